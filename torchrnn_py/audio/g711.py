"""One byte per audio sample: ITU-T G.711 mu-law and A-law, and unsigned 8-bit PCM.

Byte mappings (``fmt``):

* ``'ulaw'``: ITU-T G.711 mu-law, as Sun's ``g711.c`` (``linear2ulaw``/``ulaw2linear``):
  from 16-bit linear, magnitude clipped to 32635, bias 0x84 added, segment and 4 mantissa
  bits, the code complemented. Linear 0 is 0xFF; 0x7F also decodes to 0 (the "negative
  zero"). Decoding gives the standard expansion, -32124..32124. (ITU-T G.191's reference
  takes the one's complement of negative inputs instead of their magnitude; the two differ
  by one step for 127 negative inputs lying exactly on a decision boundary.)
* ``'alaw'``: ITU-T G.711 A-law, as Sun's ``g711.c`` ``linear2alaw`` (13-bit) and ITU-T
  G.191's ``alaw_compress``, which agree on all 65536 inputs: negative inputs by one's
  complement, even bits toggled (XOR 0x55). Linear 0 is 0xD5, -1 is 0x55; decoding gives
  -32256..32256 at the middle of each step.
* ``'pcm'``: unsigned 8-bit PCM as in WAV files, silence 0x80:
  ``u8 = clip(round(x * 128) + 128, 0, 255)`` and back ``x = (u8 - 128) / 128`` (16-bit:
  ``(u8 - 128) * 256``). So 8-bit WAV samples go through unchanged, and +1.0 clips to 255.

Floats become 16-bit linear first for the G.711 laws: ``clip(round(x * 32768), -32768,
32767)``; rounding is numpy's (half to even). Values beyond [-1, 1] (float WAVs, resampling
overshoot) are clipped and counted.
"""
import functools

import numpy as np

from ..errors import TorchRNNError

FORMATS = ("ulaw", "alaw", "pcm")
FORMAT_NAMES = {"ulaw": "mu-law", "alaw": "A-law", "pcm": "unsigned 8-bit PCM"}

# G.711 constants (Sun g711.c)
_ULAW_BIAS = 0x84
_ULAW_CLIP = 32635
_ULAW_SEG_END = np.array([0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF, 0x3FFF, 0x7FFF])
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


def check_format(fmt):
    """Return ``fmt`` if it is one of :data:`FORMATS`, else raise."""
    if fmt not in FORMATS:
        raise TorchRNNError(f"unknown 8-bit format {fmt!r}: expected one of "
                            f"{', '.join(FORMATS)}")
    return fmt


def _ulaw_encode_linear(v):
    """mu-law codes for int32 linear samples (Sun g711.c linear2ulaw, vectorised)."""
    mask = np.where(v < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(v), _ULAW_CLIP) + _ULAW_BIAS
    seg = np.searchsorted(_ULAW_SEG_END, magnitude)  # first segment whose end >= magnitude
    mantissa = (magnitude >> (seg + 3)) & 0xF
    return (((seg << 4) | mantissa) ^ mask).astype(np.uint8)


def _alaw_encode_linear(v):
    """A-law codes for int32 linear samples (Sun g711.c linear2alaw / G.191, vectorised)."""
    scaled = v >> 3  # 13-bit, rounded toward -inf
    mask = np.where(v >= 0, 0xD5, 0x55)
    magnitude = np.where(v >= 0, scaled, ~scaled)  # one's complement for negatives
    seg = np.searchsorted(_ALAW_SEG_END, magnitude)
    mantissa = (magnitude >> np.where(seg < 2, 1, seg)) & 0xF
    return (((seg << 4) | mantissa) ^ mask).astype(np.uint8)


def _ulaw_decode_codes(code):
    """Linear values for mu-law codes (Sun g711.c ulaw2linear, vectorised)."""
    u = ~code & 0xFF
    t = (((u & 0xF) << 3) + _ULAW_BIAS) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, _ULAW_BIAS - t, t - _ULAW_BIAS)


def _alaw_decode_codes(code):
    """Linear values for A-law codes (Sun g711.c alaw2linear, vectorised)."""
    a = code ^ 0x55
    seg = (a & 0x70) >> 4
    t = ((a & 0xF) << 4) + np.where(seg == 0, 8, 0x108)
    t = t << np.maximum(seg - 1, 0)
    return np.where(a & 0x80, t, -t)


@functools.lru_cache(maxsize=None)
def _g711_tables(fmt):
    """(encode: uint8[65536] indexed by the int16 sample's bit pattern, decode: int16[256]).

    Built on first use (a few milliseconds), so importing the module costs nothing.
    """
    linear = np.arange(-32768, 32768, dtype=np.int32)
    codes = np.arange(256, dtype=np.int32)
    if fmt == "ulaw":
        encoded, decoded = _ulaw_encode_linear(linear), _ulaw_decode_codes(codes)
    else:
        encoded, decoded = _alaw_encode_linear(linear), _alaw_decode_codes(codes)
    table = np.empty(65536, dtype=np.uint8)
    table[linear.astype(np.int16).view(np.uint16)] = encoded
    table.setflags(write=False)
    decoded = decoded.astype(np.int16)
    decoded.setflags(write=False)
    return table, decoded


def encode_table(fmt):
    """The 65536-entry encoder of ``fmt`` ('ulaw'/'alaw'): index = int16 sample as uint16."""
    if check_format(fmt) == "pcm":
        raise TorchRNNError("'pcm' has no G.711 table")
    return _g711_tables(fmt)[0]


def decode_table(fmt):
    """The 256-entry decoder of ``fmt``: code -> 16-bit linear value (int16)."""
    if check_format(fmt) == "pcm":
        return ((np.arange(256, dtype=np.int16) - 128) * 256).astype(np.int16)
    return _g711_tables(fmt)[1]


def quantise(samples, fmt):
    """8-bit codes for ``samples`` (float in [-1, 1] or int16), and how many were clipped."""
    check_format(fmt)
    x = np.asarray(samples)
    if x.dtype == np.int16:
        if fmt != "pcm":
            return np.take(_g711_tables(fmt)[0], x.view(np.uint16)), 0
        x = x.astype(np.float64) / 32768.0
    elif x.dtype.kind != "f":
        raise TorchRNNError(f"audio samples must be floats in [-1, 1] or int16 linear values, "
                            f"found dtype {x.dtype}")
    if not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise TorchRNNError(f"{bad} audio sample{'' if bad == 1 else 's'} are NaN or infinite")
    if fmt == "pcm":
        level = np.rint(x * 128.0)
        clipped = int(np.count_nonzero((level > 127) | (level < -128)))
        return (np.clip(level, -128, 127) + 128).astype(np.uint8), clipped
    level = np.rint(x * 32768.0)
    clipped = int(np.count_nonzero((level > 32767) | (level < -32768)))
    linear = np.clip(level, -32768, 32767).astype(np.int16)
    return np.take(_g711_tables(fmt)[0], linear.view(np.uint16)), clipped


def as_codes(data8):
    """8-bit audio (bytes or a uint8 array) as a flat uint8 array; other dtypes refused."""
    if isinstance(data8, np.ndarray):
        if data8.dtype != np.uint8:
            raise TorchRNNError(f"8-bit audio must be bytes or a uint8 array, found dtype "
                                f"{data8.dtype}")
        return data8.ravel()
    return np.frombuffer(bytes(data8), dtype=np.uint8)


def to_8bit(samples, fmt="ulaw"):
    """One byte per sample (uint8 array): ``samples`` are floats in [-1, 1] or int16 linear.

    ``fmt``: 'ulaw', 'alaw' (G.711, from 16-bit linear) or 'pcm' (unsigned, 0x80 silence);
    see the module docstring for the exact mappings. Out-of-range values are clipped.
    """
    return quantise(samples, fmt)[0]


def from_8bit(data, fmt="ulaw"):
    """16-bit linear samples (int16 array) for 8-bit ``data`` (bytes or a uint8 array)."""
    return np.take(decode_table(fmt), as_codes(data))
