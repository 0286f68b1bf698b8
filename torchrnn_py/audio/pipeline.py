"""The audio pipeline: WAV -> mono -> resampled -> 8-bit -> BinToUTF8 text (or raw bytes), and
sampled text (or bytes) -> 8-bit -> WAV.

Table paths follow :mod:`torchrnn_py.bintoutf8`: ``encode`` writes the ``.bcl`` table beside
the text, its extension replaced (``voice.txt`` -> ``voice.bcl``); ``decode`` looks for the
table the same way beside its input, so text sampled from a model needs ``--table voice.bcl``.
The BinToUTF8 options (raw, mode, table, unknown characters) are checked here, once, for the
library and the command line alike (docs/compatibility.md, "audio").
"""
from typing import NamedTuple, Optional

from ..bintoutf8 import TextDecoder, check_mode, default_table_path, encode_bytes, find_table
from ..cmdline import UsageError
from ..errors import TorchRNNError
from ..fileio import (atomic_output, atomic_outputs, check_distinct, check_input_file,
                      check_output_path, read_input_bytes, utf8_error)
from .g711 import as_codes, check_format, quantise
from .resample import check_rate, resample
from .wav import read_wav_info, write_wav

DEFAULT_RATE = 11025
TEXT_CHUNK = 1 << 20  # characters decoded at a time (progress)


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


def check_text_options(raw, mode=None, table_path=None, unknown=None):
    """Check the BinToUTF8 options of an encode or decode, given as the command line has
    them (None: not given); returns the mode ('bcl' by default), None for raw bytes.

    Raw bytes take no table, mode or unknown-character policy, and offset mode no table:
    a :class:`~torchrnn_py.cmdline.UsageError` (exit status 2) names the flags.
    """
    if raw:
        given = [flag for flag, value in (("--table", table_path), ("--mode", mode),
                                          ("--unknown", unknown)) if value is not None]
        if given:
            raise UsageError(f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} for "
                             f"BinToUTF8 text; --raw has no table, mode or unknown characters")
        return None
    mode = "bcl" if mode is None else mode
    check_mode(mode)
    if mode == "offset" and table_path:
        raise UsageError("--table is for bcl mode; offset mode has no table")
    return mode


def _wav_to_codes(in_wav, rate, fmt, progress):
    info = read_wav_info(in_wav)
    target = info.rate if rate is None else check_rate(rate, "target sample rate")
    try:
        samples = resample(info.samples, info.rate, target, progress)
    except TorchRNNError as err:
        raise TorchRNNError(f"{in_wav}: {err}") from None
    codes, clipped = quantise(samples, fmt)
    return info, target, codes, clipped


def wav_to_bytes(in_wav, rate=None, fmt="ulaw", progress=None):
    """A WAV file as headerless 8-bit audio: mono, resampled to ``rate`` (None: keep it)."""
    check_format(fmt)
    return _wav_to_codes(in_wav, rate, fmt, progress)[2].tobytes()


def bytes_to_wav(data, out_wav, rate, fmt="ulaw"):
    """Write headerless 8-bit audio ``data`` as a WAV file; returns the samples written."""
    codes = as_codes(data)
    write_wav(out_wav, rate, codes, fmt)
    return codes.size


def encode_audio(in_wav, out_path, rate=DEFAULT_RATE, fmt="ulaw", raw=False,
                 table_path=None, progress=None, mode=None):
    """WAV -> mono -> resampled to ``rate`` -> 8-bit ``fmt`` -> BinToUTF8 text (or raw bytes).

    Text is written in ``mode`` ('bcl' when None, the default, with its table at
    ``table_path`` or beside the text with the extension replaced by ``.bcl``; or 'offset',
    no table). ``raw=True`` writes the bytes themselves (no text, no table, no mode).
    ``rate`` None keeps the WAV's rate. ``progress(done, total)`` counts input samples.
    Outputs are replaced only when everything succeeded. Returns an :class:`EncodeSummary`.
    """
    check_format(fmt)
    if rate is not None:
        rate = check_rate(rate, "target sample rate")
    mode = check_text_options(raw, mode, table_path)
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


def _text_to_codes(in_path, content, mode, table, table_path, unknown, progress):
    """``(data, chars, unknown_count)`` for BinToUTF8 text ``content`` (UTF-8 bytes),
    refusing a table (or mode) that does not fit more than half of the characters."""
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
    return data, chars, n_unknown


def decode_audio(in_path, out_wav, rate=DEFAULT_RATE, fmt="ulaw", table_path=None,
                 raw=False, mode=None, unknown=None, progress=None):
    """BinToUTF8 text (e.g. sampled by a model) or raw bytes -> 8-bit ``fmt`` -> WAV file.

    ``mode`` None is 'bcl': the table comes from ``table_path``, else from beside the input
    with its extension replaced by ``.bcl``. Characters not in the table (the newline a
    sampler prints, a BOM) follow ``unknown``: 'skip' (None, the default), 'error', or a
    byte value written instead; they are counted. If more than half of the characters are
    not in the table, the table (or mode) does not belong to this text, and TorchRNNError
    says so. Raw input takes no table, mode or ``unknown``. ``progress(done, total)``
    counts characters. Returns a :class:`DecodeSummary`.
    """
    rate = check_rate(rate)
    check_format(fmt)
    mode = check_text_options(raw, mode, table_path, unknown)
    what = "raw input file" if raw else "text file"
    check_input_file(in_path, what)
    table = None
    if mode == "bcl":
        table_path, table = find_table(in_path, table_path)
    check_distinct(input_file=in_path, WAV_output=out_wav, table_file=table_path)
    check_output_path(out_wav, "WAV output")

    content = read_input_bytes(in_path, what)
    if raw:
        data, chars, n_unknown = content, len(content), 0
        if progress:
            progress(chars, chars)
    else:
        data, chars, n_unknown = _text_to_codes(in_path, content, mode, table, table_path,
                                                "skip" if unknown is None else unknown,
                                                progress)
    if not data:
        raise TorchRNNError(f"{in_path}: no audio samples to write: "
                            + ("the file is empty" if not chars else
                               "none of its characters is in the table"))
    bits = write_wav(out_wav, rate, data, fmt)
    return DecodeSummary(chars=chars, unknown=n_unknown, samples=len(data),
                         seconds=len(data) / rate, rate=rate, fmt=fmt, wav_bits=bits,
                         table_path=table_path)
