"""Sample rates: the range accepted, and polyphase resampling between two of them.

Resampling is exactly :func:`scipy.signal.resample_poly`, run in blocks so that long audio
reports progress and keeps its temporaries small.
"""
import math

import numpy as np

from ..errors import TorchRNNError

MIN_RATE = 1000  # rates accepted, in WAV headers and for --rate: below 1 kHz is no audio
MAX_RATE = 768000  # the highest rate audio interfaces offer; a typo beyond it would
                   # allocate gigabytes before failing
MAX_RESAMPLE_TERM = 200000  # largest up or down factor of the reduced rate ratio: the
                            # filter has 20 taps per unit of it (4 million taps, 32 MB)
BLOCK_SAMPLES = 1 << 20  # input samples resampled at a time (progress, bounded temporaries)


def check_rate(rate, what="sample rate"):
    """Return ``rate`` as an int if it is a whole number of Hz in MIN_RATE..MAX_RATE, else
    raise."""
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)):
        raise TorchRNNError(f"{what} must be a whole number of samples per second, "
                            f"found {rate!r}")
    if rate <= 0:
        raise TorchRNNError(f"{what} must be positive, found {rate}")
    if rate > MAX_RATE:
        raise TorchRNNError(f"{what} {rate} Hz is beyond {MAX_RATE} Hz")
    if rate < MIN_RATE:
        raise TorchRNNError(f"{what} {rate} Hz is below {MIN_RATE} Hz")
    return int(rate)


def _resample_factors(rate_in, rate_out):
    """``(rate_in, rate_out, up, down)``: the checked rates and their reduced ratio."""
    rate_in = check_rate(rate_in, "input sample rate")
    rate_out = check_rate(rate_out, "target sample rate")
    g = math.gcd(int(rate_in), rate_out)
    return rate_in, rate_out, rate_out // g, int(rate_in) // g


def resample(samples, rate_in, rate_out, progress=None, block=BLOCK_SAMPLES):
    """Resample 1-D float ``samples`` from ``rate_in`` to ``rate_out`` Hz (polyphase), both
    in MIN_RATE..MAX_RATE, their reduced ratio's terms at most MAX_RESAMPLE_TERM.

    Exactly :func:`scipy.signal.resample_poly` with ``up/down`` the reduced fraction of the
    rates (44100 -> 11025 is 1/4, 44100 -> 8000 is 80/441) and its default Kaiser filter;
    ``ceil(n * rate_out / rate_in)`` samples come out. The work is done in blocks of about
    ``block`` input samples, each with enough neighbours for the filter, so the result is
    the same while ``progress(done, total)`` (input samples) can report, and temporaries
    stay small. Equal rates return a copy.
    """
    rate_in, rate_out, up, down = _resample_factors(rate_in, rate_out)
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1:
        raise TorchRNNError(f"resampling takes mono samples (1-D), found shape {x.shape}")
    n = x.size
    if up == down:
        if progress:
            progress(n, n)
        return x.copy()
    if max(up, down) > MAX_RESAMPLE_TERM:
        raise TorchRNNError(f"resampling {rate_in} Hz to {rate_out} Hz would need a filter of "
                            f"{20 * max(up, down) + 1} taps (the ratio {up}/{down} does not "
                            f"reduce further); convert the audio to a common rate first "
                            f"(e.g. with sox or ffmpeg)")
    return _resample_blocks(x, up, down, progress, block)


def _resample_blocks(x, up, down, progress, block):
    """``resample_poly(x, up, down)`` (x: (n,)) computed block by block, the same result."""
    from scipy.signal import firwin, resample_poly
    n = x.size
    half_len = 10 * max(up, down)  # resample_poly's default filter, designed once
    h = firwin(2 * half_len + 1, 1.0 / max(up, down), window=("kaiser", 5.0))
    n_out = -(-n * up // down)
    step = down * max(1, int(block) // down)  # block starts are multiples of `down`, so
    # each block's first output sample falls on the global output grid
    if n <= step:
        out = resample_poly(x, up, down, window=h)
        if progress:
            progress(n, n)
        return out
    margin = down * (-(-(half_len + 2 * down) // (up * down)) + 1)  # input samples the
    # filter reaches on each side of an output sample, rounded up to a multiple of `down`
    out = np.empty(n_out, dtype=np.float64)
    for k0 in range(0, n, step):
        k1 = min(k0 + step, n)
        lo, hi = max(0, k0 - margin), min(n, k1 + margin)
        y = resample_poly(x[lo:hi], up, down, window=h)
        o0 = k0 * up // down
        o1 = n_out if k1 == n else k1 * up // down
        skip = (k0 - lo) * up // down
        out[o0:o1] = y[skip:skip + (o1 - o0)]
        if progress:
            progress(k1, n)
    return out
