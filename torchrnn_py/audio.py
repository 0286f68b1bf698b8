"""WAV audio <-> headerless 8-bit samples <-> BinToUTF8 text, for training torch-rnn on voices.

The BinToUTF8 experiments trained torch-rnn on raw 8-bit audio at 8000-11025 Hz turned into
text one character per byte. This module does the audio half of that pipeline, so no audio
editor is needed between a WAV file and a model:

    WAV (any rate, PCM/float/G.711, mono or more channels)
      -> mono float in [-1, 1] -> polyphase resampling to the target rate
      -> one byte per sample ('ulaw', 'alaw' or 'pcm')
      -> BinToUTF8 text (bcl or offset mode, via :mod:`.bintoutf8`) or the raw bytes

and back: sampled text -> bytes (characters not in the table counted and skipped) -> WAV.

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

WAV outputs: ``'pcm'`` bytes are written as an 8-bit unsigned PCM WAV (the bytes as they
are, so WAV -> bytes -> WAV at the same rate is exact for 8-bit input); mu-law and A-law
bytes are decoded and written as 16-bit PCM, which every player reads (scipy and many
programs cannot read G.711 WAVs).

Table paths follow :mod:`.bintoutf8`: ``encode`` writes the ``.bcl`` table beside the text,
its extension replaced (``voice.txt`` -> ``voice.bcl``); ``decode`` looks for the table the
same way beside its input, so text sampled from a model needs ``--table voice.bcl``.

Everything is held in memory (minutes of 11 kHz audio are a few MB) and vectorised with
numpy; resampling runs in blocks, giving exact results and progress reports.
"""
import functools
import math
import os
import struct
import sys
import warnings
from typing import NamedTuple, Optional

import numpy as np

from .bintoutf8 import (MODES, TextDecoder, check_mode, default_table_path, encode_bytes,
                        find_table, parse_unknown)
from .cmdline import ArgumentParser, UsageError, run_main
from .errors import TorchRNNError
from .fileio import (atomic_output, atomic_outputs, check_distinct, check_input_file,
                     check_output_path, utf8_error)
from .progress import ProgressLine

PROG = "torchrnn-audio"
FORMATS = ("ulaw", "alaw", "pcm")
FORMAT_NAMES = {"ulaw": "mu-law", "alaw": "A-law", "pcm": "unsigned 8-bit PCM"}
DEFAULT_RATE = 11025
MIN_RATE = 1000  # rates accepted, in WAV headers and for --rate: below 1 kHz is no audio
MAX_RATE = 768000  # the highest rate audio interfaces offer; a typo beyond it would
                   # allocate gigabytes before failing
MAX_RESAMPLE_TERM = 200000  # largest up or down factor of the reduced rate ratio: the
                            # filter has 20 taps per unit of it (4 million taps, 32 MB)
BLOCK_SAMPLES = 1 << 20  # input samples resampled at a time (progress, bounded temporaries)
TEXT_CHUNK = 1 << 20  # characters decoded at a time (progress)

# G.711 constants (Sun g711.c)
_ULAW_BIAS = 0x84
_ULAW_CLIP = 32635
_ULAW_SEG_END = np.array([0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF, 0x3FFF, 0x7FFF])
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])

# WAV format codes, to name what a file holds when it cannot be read.
_WAVE_PCM, _WAVE_FLOAT, _WAVE_ALAW, _WAVE_ULAW, _WAVE_EXTENSIBLE = 0x1, 0x3, 0x6, 0x7, 0xFFFE
_WAVE_FORMAT_NAMES = {
    0x0000: "unknown", 0x0001: "PCM", 0x0002: "Microsoft ADPCM", 0x0003: "IEEE float",
    0x0006: "A-law", 0x0007: "mu-law", 0x0010: "OKI ADPCM", 0x0011: "IMA ADPCM",
    0x0022: "TrueSpeech", 0x0031: "GSM 6.10", 0x0040: "G.721 ADPCM", 0x0050: "MPEG",
    0x0055: "MPEG layer 3 (MP3)", 0x0092: "Dolby AC-3", 0x00FF: "AAC",
    0x0160: "Windows Media Audio", 0x0161: "Windows Media Audio", 0x1610: "HE-AAC",
    0x2000: "Dolby AC-3", 0x6750: "Ogg Vorbis", 0xF1AC: "FLAC",
    0xFFFE: "WAVE_FORMAT_EXTENSIBLE with an unknown sub-format",
}
# the GUID {<format code>-0000-0010-8000-00AA00389B71} of WAVE_FORMAT_EXTENSIBLE sub-formats
_KSDATAFORMAT_TAIL = b"\x00\x00\x10\x00\x80\x00\x00\xAA\x00\x38\x9B\x71"
_KSDATAFORMAT_TAIL_BE = b"\x00\x00\x00\x10\x80\x00\x00\xAA\x00\x38\x9B\x71"


class WavInfo(NamedTuple):
    """What :func:`read_wav_info` found: the rate, mono float samples, and the source."""
    rate: int
    samples: np.ndarray
    channels: int
    encoding: str  # e.g. "16-bit PCM", "32-bit float", "mu-law"


class EncodeSummary(NamedTuple):
    """What :func:`encode_audio` did."""
    source_rate: int
    source_channels: int
    source_encoding: str
    source_seconds: float
    rate: int
    fmt: str
    samples: int  # samples (= bytes = characters) written
    seconds: float
    out_bytes: int  # size of the output file (UTF-8 text, or the raw bytes)
    mode: Optional[str]  # 'bcl' or 'offset'; None for raw output
    table_path: Optional[str]
    clipped: int  # samples beyond the 8-bit format's range, clipped


class DecodeSummary(NamedTuple):
    """What :func:`decode_audio` did."""
    chars: int  # characters read (bytes, for raw input)
    unknown: int  # characters not in the table (skipped, replaced: see the policy)
    samples: int
    seconds: float
    rate: int
    fmt: str
    wav_bits: int  # 8 (unsigned PCM) or 16
    table_path: Optional[str]


# --------------------------------------------------------------------------- checks

def check_format(fmt):
    """Return ``fmt`` if it is one of :data:`FORMATS`, else raise."""
    if fmt not in FORMATS:
        raise TorchRNNError(f"unknown 8-bit format {fmt!r}: expected one of "
                            f"{', '.join(FORMATS)}")
    return fmt


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


# --------------------------------------------------------------------------- G.711 and PCM

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


def _quantise(samples, fmt):
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


def to_8bit(samples, fmt="ulaw"):
    """One byte per sample (uint8 array): ``samples`` are floats in [-1, 1] or int16 linear.

    ``fmt``: 'ulaw', 'alaw' (G.711, from 16-bit linear) or 'pcm' (unsigned, 0x80 silence);
    see the module docstring for the exact mappings. Out-of-range values are clipped.
    """
    return _quantise(samples, fmt)[0]


def from_8bit(data, fmt="ulaw"):
    """16-bit linear samples (int16 array) for 8-bit ``data`` (bytes or a uint8 array)."""
    return np.take(decode_table(fmt), _as_codes(data))


# --------------------------------------------------------------------------- WAV files

def _describe_start(head):
    if not head:
        return "the file is empty"
    return f"no RIFF/WAVE header; it starts with {head[:16]!r}"


def _wav_format_name(tag):
    return _WAVE_FORMAT_NAMES.get(tag, "an unknown encoding")


def _inspect_wav(path):
    """Walk the RIFF chunks: the fmt fields and where the data is, for what scipy cannot do.

    Returns a dict with ``tag`` (sub-format resolved for WAVE_FORMAT_EXTENSIBLE),
    ``channels``, ``rate``, ``block_align``, ``bits``, ``data_offset``, ``data_size``
    (None when absent); raises TorchRNNError when the file is not RIFF/WAVE at all.
    """
    info = {"tag": None, "channels": None, "rate": None, "block_align": None, "bits": None,
            "data_offset": None, "data_size": None}
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX", b"RF64") \
                or head[8:12] != b"WAVE":
            raise TorchRNNError(f"{path}: not a WAV file ({_describe_start(head)})")
        endian = ">" if head[:4] == b"RIFX" else "<"
        while True:
            header = f.read(8)
            if len(header) < 8:
                break
            chunk_id = header[:4]
            (chunk_size,) = struct.unpack(endian + "I", header[4:])
            start = f.tell()
            if chunk_id == b"fmt " and info["tag"] is None:
                body = f.read(min(chunk_size, 256))
                if len(body) < 16:
                    raise TorchRNNError(f"{path}: damaged WAV file: its fmt chunk has "
                                        f"{len(body)} bytes, expected at least 16")
                tag, channels, rate, _, block_align, bits = struct.unpack(
                    endian + "HHIIHH", body[:16])
                tail = _KSDATAFORMAT_TAIL if endian == "<" else _KSDATAFORMAT_TAIL_BE
                if tag == _WAVE_EXTENSIBLE and len(body) >= 40 and body[28:40] == tail:
                    (tag,) = struct.unpack(endian + "I", body[24:28])
                info.update(tag=tag, channels=channels, rate=rate, block_align=block_align,
                            bits=bits)
            elif chunk_id == b"data" and info["data_offset"] is None:
                info["data_offset"] = start
                info["data_size"] = min(chunk_size, size - start)  # RF64: 0xFFFFFFFF
                if info["tag"] is not None:
                    break
            f.seek(start + chunk_size + (chunk_size & 1))
    if info["tag"] is None:
        raise TorchRNNError(f"{path}: damaged WAV file: no fmt chunk (the chunk that says "
                            f"how the samples are stored)")
    if info["data_offset"] is None:
        raise TorchRNNError(f"{path}: damaged WAV file: no data chunk (the samples)")
    if not info["channels"]:
        raise TorchRNNError(f"{path}: damaged WAV file: its header says 0 channels")
    return info


def _read_g711_wav(path, info, fmt):
    """Mono float samples of a mu-law/A-law WAV (scipy reads only PCM and float)."""
    channels = info["channels"]
    if info["bits"] != 8 or info["block_align"] != channels:
        raise TorchRNNError(f"{path}: unsupported {FORMAT_NAMES[fmt]} WAV: {info['bits']} "
                            f"bits per sample, {info['block_align']} bytes per frame for "
                            f"{channels} channel(s); expected 8 bits, one byte per channel")
    frames = info["data_size"] // channels
    with open(path, "rb") as f:
        f.seek(info["data_offset"])
        codes = np.frombuffer(f.read(frames * channels), dtype=np.uint8)
    linear = from_8bit(codes, fmt).astype(np.float64) / 32768.0
    return linear.reshape(-1, channels) if channels > 1 else linear


def read_wav_info(path):
    """Read a WAV file as mono float samples; returns a :class:`WavInfo`.

    Reads 8-bit unsigned, 16/24/32/64-bit integer and 32/64-bit float PCM (scipy, also in
    WAVE_FORMAT_EXTENSIBLE files), and mu-law/A-law WAVs. Integers are scaled by their
    container (scipy left-justifies 24-bit samples in int32, so /2**31 is right for them),
    8-bit as ``(u8 - 128) / 128``; floats are kept as they are (not clipped). Channels are
    averaged. Anything else (not a WAV, compressed encodings, no samples) raises
    TorchRNNError naming the file and what it holds.
    """
    check_input_file(path, "WAV file")
    info = _inspect_wav(path)
    if info["rate"] and not MIN_RATE <= info["rate"] <= MAX_RATE:
        raise TorchRNNError(f"{path}: the WAV header says a sample rate of {info['rate']} Hz; "
                            f"expected {MIN_RATE} to {MAX_RATE} Hz")
    tag = info["tag"]
    if tag in (_WAVE_ULAW, _WAVE_ALAW):
        fmt = "ulaw" if tag == _WAVE_ULAW else "alaw"
        data, encoding = _read_g711_wav(path, info, fmt), FORMAT_NAMES[fmt]
        rate = info["rate"]
    elif tag in (_WAVE_PCM, _WAVE_FLOAT):
        from scipy.io import wavfile  # here, so that importing this module stays cheap
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", wavfile.WavFileWarning)
                rate, data = wavfile.read(path)
        except UnboundLocalError:  # scipy, when its chunk walk ends before a data chunk
            raise TorchRNNError(f"{path}: damaged WAV file: no data chunk within the size "
                                f"its RIFF header gives") from None
        except (ValueError, struct.error, EOFError, IndexError, ZeroDivisionError,
                OverflowError, TypeError) as err:
            raise TorchRNNError(f"{path}: unreadable WAV file ({_wav_format_name(tag)}, "
                                f"{info['bits']} bits): {err}") from None
        if data.dtype.kind == "f":
            encoding = f"{8 * data.dtype.itemsize}-bit float"
        else:
            encoding = f"{info['bits']}-bit PCM"
    else:
        raise TorchRNNError(f"{path}: unsupported WAV encoding: {_wav_format_name(tag)} "
                            f"(format code 0x{tag:04X}); only PCM, IEEE float, mu-law and "
                            f"A-law WAV files can be read: convert it to 16-bit PCM first "
                            f"(e.g. with sox or ffmpeg)")
    if data.size == 0:
        raise TorchRNNError(f"{path}: the WAV file has no audio samples")
    if not rate or rate <= 0:
        raise TorchRNNError(f"{path}: damaged WAV file: its header says a sample rate of "
                            f"{rate} Hz")
    channels = 1 if data.ndim == 1 else data.shape[1]
    kind = data.dtype.kind
    if kind == "u":
        samples = (data.astype(np.float64) - 128.0) / 128.0
    elif kind == "i":
        samples = data.astype(np.float64) / float(2 ** (8 * data.dtype.itemsize - 1))
    else:
        samples = data.astype(np.float64)
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        if bad:
            raise TorchRNNError(f"{path}: {bad} sample{'' if bad == 1 else 's'} of the WAV "
                                f"file are NaN or infinite")
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    return WavInfo(int(rate), samples, channels, encoding)


def read_wav(path):
    """``(rate, samples)``: a WAV file as mono float64 samples (see :func:`read_wav_info`)."""
    info = read_wav_info(path)
    return info.rate, info.samples


def _as_codes(data8):
    if isinstance(data8, np.ndarray):
        if data8.dtype != np.uint8:
            raise TorchRNNError(f"8-bit audio must be bytes or a uint8 array, found dtype "
                                f"{data8.dtype}")
        return data8.ravel()
    return np.frombuffer(bytes(data8), dtype=np.uint8)


def write_wav(path, rate, data8, fmt="ulaw"):
    """Write 8-bit audio ``data8`` (bytes or uint8 array, ``fmt``) as a WAV file, atomically.

    'pcm' bytes become an 8-bit unsigned PCM WAV unchanged; mu-law and A-law bytes are
    decoded to a 16-bit PCM WAV. Returns the number of bits per sample written (8 or 16).
    """
    rate = check_rate(rate)
    check_format(fmt)
    codes = _as_codes(data8)
    samples = codes if fmt == "pcm" else from_8bit(codes, fmt)
    from scipy.io import wavfile
    with atomic_output(path, "wb", what="WAV output") as f:
        wavfile.write(f, rate, samples)
    return 8 * samples.dtype.itemsize


# --------------------------------------------------------------------------- resampling

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
    if isinstance(rate_in, bool) or not isinstance(rate_in, (int, np.integer)) \
            or rate_in <= 0:
        raise TorchRNNError(f"input sample rate must be a positive whole number, "
                            f"found {rate_in!r}")
    rate_in = check_rate(rate_in, "input sample rate")
    rate_out = check_rate(rate_out, "target sample rate")
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1:
        raise TorchRNNError(f"resampling takes mono samples (1-D), found shape {x.shape}")
    n = x.size
    g = math.gcd(int(rate_in), rate_out)
    up, down = rate_out // g, int(rate_in) // g
    if up == down:
        if progress:
            progress(n, n)
        return x.copy()
    if max(up, down) > MAX_RESAMPLE_TERM:
        raise TorchRNNError(f"resampling {rate_in} Hz to {rate_out} Hz would need a filter of "
                            f"{20 * max(up, down) + 1} taps (the ratio {up}/{down} does not "
                            f"reduce further); convert the audio to a common rate first "
                            f"(e.g. with sox or ffmpeg)")
    from scipy.signal import firwin, resample_poly
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


# --------------------------------------------------------------------------- pipelines

def _wav_to_codes(in_wav, rate, fmt, progress):
    info = read_wav_info(in_wav)
    target = info.rate if rate is None else check_rate(rate, "target sample rate")
    try:
        samples = resample(info.samples, info.rate, target, progress)
    except TorchRNNError as err:
        raise TorchRNNError(f"{in_wav}: {err}") from None
    codes, clipped = _quantise(samples, fmt)
    return info, target, codes, clipped


def wav_to_bytes(in_wav, rate=None, fmt="ulaw", progress=None):
    """A WAV file as headerless 8-bit audio: mono, resampled to ``rate`` (None: keep it)."""
    check_format(fmt)
    return _wav_to_codes(in_wav, rate, fmt, progress)[2].tobytes()


def bytes_to_wav(data, out_wav, rate, fmt="ulaw"):
    """Write headerless 8-bit audio ``data`` as a WAV file; returns the samples written."""
    codes = _as_codes(data)
    write_wav(out_wav, rate, codes, fmt)
    return codes.size


def encode_audio(in_wav, out_path, rate=DEFAULT_RATE, fmt="ulaw", raw=False,
                 table_path=None, progress=None, mode="bcl"):
    """WAV -> mono -> resampled to ``rate`` -> 8-bit ``fmt`` -> BinToUTF8 text (or raw bytes).

    Text is written in ``mode`` ('bcl', the default, with its table at ``table_path`` or
    beside the text with the extension replaced by ``.bcl``; or 'offset', no table).
    ``raw=True`` writes the bytes themselves (no text, no table). ``rate`` None keeps the
    WAV's rate. ``progress(done, total)`` counts input samples. Outputs are replaced only
    when everything succeeded. Returns an :class:`EncodeSummary`.
    """
    check_format(fmt)
    if rate is not None:
        rate = check_rate(rate, "target sample rate")
    mode = _text_mode(raw, mode, table_path, "output")
    if mode == "bcl":
        table_path = table_path or default_table_path(out_path)
    check_input_file(in_wav, "WAV file")
    what = "raw output" if raw else "text output"
    check_distinct(input_WAV=in_wav, **{what.replace(" ", "_"): out_path},
                    table_output=table_path)
    check_output_path(out_path, what)
    if table_path:
        check_output_path(table_path, ".bcl table")

    info, target, codes, clipped = _wav_to_codes(in_wav, rate, fmt, progress)
    if raw:
        payload = codes.tobytes()
        with atomic_output(out_path, "wb", what=what) as out:
            out.write(payload)
    else:
        text, table = encode_bytes(codes, mode)
        payload = text.encode("utf-8")
        with atomic_outputs() as files:             # the text and its table appear together
            files.open(out_path, "wb", what).write(payload)
            if table_path:
                files.open(table_path, "wb", ".bcl table").write(table)
    return EncodeSummary(
        source_rate=info.rate, source_channels=info.channels, source_encoding=info.encoding,
        source_seconds=info.samples.size / info.rate, rate=target, fmt=fmt,
        samples=int(codes.size), seconds=codes.size / target, out_bytes=len(payload),
        mode=mode, table_path=table_path, clipped=clipped)


def _decode_utf8(path, raw_text):
    try:
        return raw_text.decode("utf-8")
    except UnicodeDecodeError as err:
        raise utf8_error(err, path, hint="; is it BinToUTF8 text? (give --raw for raw "
                                         "bytes)") from None


def _text_mode(raw, mode, table_path, side):
    """Check the BinToUTF8 options of an encode (``side`` 'output') or decode ('input'):
    returns the mode (None for raw bytes); raw and offset mode take no table."""
    if raw:
        if table_path:
            raise TorchRNNError(f"raw {side} has no table (the table is for bcl text)")
        return None
    check_mode(mode)
    if mode == "offset" and table_path:
        raise TorchRNNError("offset mode uses no table (the table is for bcl mode)")
    return mode


def decode_audio(in_path, out_wav, rate=DEFAULT_RATE, fmt="ulaw", table_path=None,
                 raw=False, mode="bcl", unknown="skip", progress=None):
    """BinToUTF8 text (e.g. sampled by a model) or raw bytes -> 8-bit ``fmt`` -> WAV file.

    In bcl mode the table comes from ``table_path``, else from beside the input with its
    extension replaced by ``.bcl``. Characters not in the table (the newline a sampler
    prints, a BOM) follow ``unknown``: 'skip' (default), 'error', or a byte value written
    instead; they are counted. If more than half of the characters are not in the table,
    the table (or mode) does not belong to this text, and TorchRNNError says so.
    ``progress(done, total)`` counts characters. Returns a :class:`DecodeSummary`.
    """
    rate = check_rate(rate)
    check_format(fmt)
    check_input_file(in_path, "raw input file" if raw else "text file")
    table = None
    if _text_mode(raw, mode, table_path, "input") == "bcl":
        table_path, table = find_table(in_path, table_path)
    check_distinct(input_file=in_path, WAV_output=out_wav, table_file=table_path)
    check_output_path(out_wav, "WAV output")

    with open(in_path, "rb") as f:
        content = f.read()
    if raw:
        data, chars, n_unknown = content, len(content), 0
        if progress:
            progress(chars, chars)
    else:
        text = _decode_utf8(in_path, content)
        decoder = TextDecoder(mode, table, unknown, source=in_path)
        chars = len(text)
        parts = []
        for start in range(0, chars, TEXT_CHUNK):
            parts.append(decoder.decode(text[start:start + TEXT_CHUNK]))
            if progress:
                progress(min(start + TEXT_CHUNK, chars), chars)
        data, n_unknown = b"".join(parts), decoder.unknown
        if n_unknown * 2 > chars:
            if mode == "bcl":
                raise TorchRNNError(
                    f"{in_path}: {n_unknown} of {chars} characters are not in the table "
                    f"{table_path}: the table probably belongs to another file (or the text "
                    f"is not BinToUTF8 text in bcl mode)")
            raise TorchRNNError(
                f"{in_path}: {n_unknown} of {chars} characters are not offset-mode BinToUTF8 "
                f"characters (U+3900..U+39FF): was the text written in bcl mode? (then give "
                f"--mode bcl and its --table)")
    if not data:
        raise TorchRNNError(f"{in_path}: no audio samples to write: "
                            + ("the file is empty" if not chars else
                               "none of its characters is in the table"))
    bits = write_wav(out_wav, rate, data, fmt)
    return DecodeSummary(chars=chars, unknown=n_unknown, samples=len(data),
                         seconds=len(data) / rate, rate=rate, fmt=fmt, wav_bits=bits,
                         table_path=table_path)


# --------------------------------------------------------------------------- command

def parse_rate(text):
    """``--rate`` value: a whole number of Hz, MIN_RATE..MAX_RATE."""
    try:
        value = int(text.strip(), 10)
    except ValueError:
        raise UsageError(f"invalid --rate value {text!r}: expected a whole number of samples "
                         f"per second (e.g. {DEFAULT_RATE})") from None
    if not MIN_RATE <= value <= MAX_RATE:
        raise UsageError(f"invalid --rate value {text!r}: the sample rate must be between "
                         f"{MIN_RATE} and {MAX_RATE} Hz")
    return value


def build_parser():
    """``torchrnn-audio encode|decode ...``."""
    parser = ArgumentParser(
        prog=PROG, description="Turn WAV audio into 8-bit BinToUTF8 text for torch-rnn, "
                               "and text sampled from a model back into a WAV file.")
    commands = parser.add_subparsers(dest="command", metavar="encode|decode", required=True)

    enc = commands.add_parser(
        "encode", help="WAV -> mono, resampled, 8-bit -> BinToUTF8 text (or raw bytes)",
        description="WAV -> mono -> resampled -> 8-bit -> BinToUTF8 text (or raw bytes).")
    enc.add_argument("input", help="the WAV file (PCM 8-32 bit, float, mu-law or A-law)")
    enc.add_argument("output", help="the text (or, with --raw, the bytes) to write")
    dec = commands.add_parser(
        "decode", help="BinToUTF8 text (or raw bytes) -> WAV",
        description="BinToUTF8 text, e.g. sampled from a model (or raw 8-bit bytes) -> WAV. "
                    "mu-law and A-law are written as 16-bit PCM, pcm as 8-bit unsigned PCM.")
    dec.add_argument("input", help="the text (or, with --raw, the bytes) to decode")
    dec.add_argument("output", help="the WAV file to write")
    for p, verb in ((enc, "resample to"), (dec, "play at")):
        p.add_argument("--rate", type=parse_rate, default=DEFAULT_RATE, metavar="HZ",
                       help=f"sample rate to {verb} (default: {DEFAULT_RATE})")
        p.add_argument("--format", choices=FORMATS, default="ulaw", dest="fmt",
                       help="8-bit format: ulaw (G.711 mu-law, default), alaw (G.711 A-law) "
                            "or pcm (unsigned, silence 0x80)")
        p.add_argument("--raw", action="store_true",
                       help="headerless bytes instead of BinToUTF8 text (no table)")
        p.add_argument("--mode", choices=MODES, default=None,
                       help="BinToUTF8 mode: bcl (ASCII first, needs the .bcl table; "
                            "default) or offset (U+3900+byte, no table)")
        p.add_argument("--quiet", action="store_true",
                       help="print nothing but errors (no summary, no progress line)")
    enc.add_argument("--table", metavar="T.bcl",
                     help="where to write the table in bcl mode (default: OUTPUT with its "
                          "extension replaced by .bcl)")
    dec.add_argument("--table", metavar="T.bcl",
                     help="the table written when encoding (default: INPUT with its "
                          "extension replaced by .bcl)")
    dec.add_argument("--unknown", type=parse_unknown, default=None, metavar="skip|error|BYTE",
                     help="characters not in the table (a trailing newline, a BOM): skip "
                          "them (default), stop with an error, or write BYTE (e.g. 0x80)")
    return parser


def _plural(n, word):
    return f"{n} {word}{'' if n == 1 else 's'}"


def _encode_summary(args, s):
    channels = _plural(s.source_channels, "channel")
    line = (f"{args.input}: {s.source_encoding}, {s.source_rate} Hz, {channels}, "
            f"{s.source_seconds:.2f} s -> {args.output}: {_plural(s.samples, 'sample')} of "
            f"{FORMAT_NAMES[s.fmt]} at {s.rate} Hz ({s.seconds:.2f} s), ")
    if s.mode is None:
        line += f"{s.out_bytes} raw bytes"
    else:
        line += f"{s.out_bytes} bytes of UTF-8 text ({s.mode} mode)"
    if s.table_path:
        line += f"; table {s.table_path}"
    if s.clipped:
        line += f"; {_plural(s.clipped, 'sample')} clipped"
    return line


def _decode_summary(args, s, unknown):
    if args.raw:
        line = f"{args.input}: {s.chars} bytes"
    else:
        if unknown == "skip":
            fate = "skipped"
        elif unknown == "error":
            fate = "none allowed"
        else:
            fate = f"each written as byte {unknown} (0x{unknown:02X})"
        line = (f"{args.input}: {_plural(s.chars, 'character')}, {s.unknown} not in the "
                f"table ({fate})")
    line += (f" -> {args.output}: {_plural(s.samples, 'sample')} of {FORMAT_NAMES[s.fmt]} at "
             f"{s.rate} Hz ({s.seconds:.2f} s) as {'an' if s.wav_bits == 8 else 'a'} "
             f"{s.wav_bits}-bit PCM WAV")
    if s.table_path:
        line += f"; table {s.table_path}"
    return line


def _command(argv):
    args = build_parser().parse_args(argv)
    if args.raw:
        given = [flag for flag, value in (("--table", args.table), ("--mode", args.mode),
                                          ("--unknown", getattr(args, "unknown", None)))
                 if value is not None]
        if given:
            raise UsageError(f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} for "
                             f"BinToUTF8 text; --raw has no table, mode or unknown characters")
    mode = args.mode or "bcl"
    if mode == "offset" and args.table:
        raise UsageError("--table is for bcl mode; offset mode has no table")
    name = os.path.basename(args.input)
    with ProgressLine(f"{args.command} {name}", unit="samples" if args.command == "encode"
                      else "chars", enabled=False if args.quiet else None) as line:
        if args.command == "encode":
            summary = encode_audio(args.input, args.output, rate=args.rate, fmt=args.fmt,
                                   raw=args.raw, table_path=args.table, mode=mode,
                                   progress=line.update)
        else:
            unknown = "skip" if args.unknown is None else args.unknown
            summary = decode_audio(args.input, args.output, rate=args.rate, fmt=args.fmt,
                                   table_path=args.table, raw=args.raw, mode=mode,
                                   unknown=unknown, progress=line.update)
    if not args.quiet:
        print(_encode_summary(args, summary) if args.command == "encode"
              else _decode_summary(args, summary, unknown))
    return 0


def main(argv=None):
    """``torchrnn-audio encode IN.wav OUT.txt [...]`` / ``decode IN.txt OUT.wav [...]``."""
    return run_main(PROG, _command, argv)


if __name__ == "__main__":
    sys.exit(main())
