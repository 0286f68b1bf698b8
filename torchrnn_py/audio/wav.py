"""WAV files: read any PCM, float, mu-law or A-law WAV as mono floats; write 8-bit audio.

Reading walks the RIFF chunks itself for what scipy cannot do (G.711 WAVs, naming the
encoding of a file it refuses). Writing: ``'pcm'`` bytes become an 8-bit unsigned PCM WAV
(the bytes as they are, so WAV -> bytes -> WAV at the same rate is exact for 8-bit input);
mu-law and A-law bytes are decoded and written as 16-bit PCM, which every player reads
(scipy and many programs cannot read G.711 WAVs).
"""
import os
import struct
import warnings
from typing import NamedTuple

import numpy as np

from ..errors import TorchRNNError
from ..fileio import atomic_output, check_input_file
from .g711 import FORMAT_NAMES, as_codes, check_format, from_8bit
from .resample import MAX_RATE, MIN_RATE, check_rate

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


def _describe_start(head):
    if not head:
        return "the file is empty"
    return f"no RIFF/WAVE header; it starts with {head[:16]!r}"


def _wav_format_name(tag):
    return _WAVE_FORMAT_NAMES.get(tag, "an unknown encoding")


def _read_fmt_chunk(path, f, endian, chunk_size, info):
    """Fill ``info`` from the fmt chunk at ``f``'s position (sub-format resolved)."""
    body = f.read(min(chunk_size, 256))
    if len(body) < 16:
        raise TorchRNNError(f"{path}: damaged WAV file: its fmt chunk has "
                            f"{len(body)} bytes, expected at least 16")
    tag, channels, rate, _, block_align, bits = struct.unpack(endian + "HHIIHH", body[:16])
    tail = _KSDATAFORMAT_TAIL if endian == "<" else _KSDATAFORMAT_TAIL_BE
    if tag == _WAVE_EXTENSIBLE and len(body) >= 40 and body[28:40] == tail:
        (tag,) = struct.unpack(endian + "I", body[24:28])
    info.update(tag=tag, channels=channels, rate=rate, block_align=block_align, bits=bits)


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
                _read_fmt_chunk(path, f, endian, chunk_size, info)
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


def _read_pcm_wav(path, info):
    """``(rate, data, encoding)`` of a PCM or float WAV, read by scipy."""
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
        raise TorchRNNError(f"{path}: unreadable WAV file ({_wav_format_name(info['tag'])}, "
                            f"{info['bits']} bits): {err}") from None
    if data.dtype.kind == "f":
        return rate, data, f"{8 * data.dtype.itemsize}-bit float"
    return rate, data, f"{info['bits']}-bit PCM"


def _read_samples(path, info):
    """``(rate, data, encoding)``: the samples as stored ((frames,) or (frames, channels))."""
    tag = info["tag"]
    if tag in (_WAVE_ULAW, _WAVE_ALAW):
        fmt = "ulaw" if tag == _WAVE_ULAW else "alaw"
        return info["rate"], _read_g711_wav(path, info, fmt), FORMAT_NAMES[fmt]
    if tag in (_WAVE_PCM, _WAVE_FLOAT):
        return _read_pcm_wav(path, info)
    raise TorchRNNError(f"{path}: unsupported WAV encoding: {_wav_format_name(tag)} "
                        f"(format code 0x{tag:04X}); only PCM, IEEE float, mu-law and "
                        f"A-law WAV files can be read: convert it to 16-bit PCM first "
                        f"(e.g. with sox or ffmpeg)")


def _mono_float(path, data):
    """Samples (frames,) or (frames, channels) as mono float64 (frames,), scaled to [-1, 1]."""
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
    return samples


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
    rate, data, encoding = _read_samples(path, info)
    if data.size == 0:
        raise TorchRNNError(f"{path}: the WAV file has no audio samples")
    if not rate or rate <= 0:
        raise TorchRNNError(f"{path}: damaged WAV file: its header says a sample rate of "
                            f"{rate} Hz")
    channels = 1 if data.ndim == 1 else data.shape[1]
    return WavInfo(int(rate), _mono_float(path, data), channels, encoding)


def read_wav(path):
    """``(rate, samples)``: a WAV file as mono float64 samples (see :func:`read_wav_info`)."""
    info = read_wav_info(path)
    return info.rate, info.samples


def write_wav(path, rate, data8, fmt="ulaw"):
    """Write 8-bit audio ``data8`` (bytes or uint8 array, ``fmt``) as a WAV file, atomically.

    'pcm' bytes become an 8-bit unsigned PCM WAV unchanged; mu-law and A-law bytes are
    decoded to a 16-bit PCM WAV. Returns the number of bits per sample written (8 or 16).
    """
    rate = check_rate(rate)
    check_format(fmt)
    codes = as_codes(data8)
    samples = codes if fmt == "pcm" else from_8bit(codes, fmt)
    from scipy.io import wavfile
    with atomic_output(path, "wb", what="WAV output") as f:
        wavfile.write(f, rate, samples)
    return 8 * samples.dtype.itemsize
