"""Turn a text file into token ids (HDF5) and a vocabulary (JSON), as torch-rnn's preprocess.py.

Same flags, printed lines and output files as the original ``scripts/preprocess.py`` (each
flag also in its single-dash form; stderr adds ``wrote PATH`` per file unless ``--quiet``), but
streamed and vectorised: the file is read twice in large chunks (once to count tokens and
number them by first appearance, once to write the ids), each chunk turned into code points
with numpy, so memory stays flat whatever the file size.
"""
import codecs
import json
import os
import re

import numpy as np

from ..errors import TorchRNNError
from ..fileio import (atomic_outputs, check_distinct, check_input_file, check_output_path,
                      read_input_chunks)
from ..vocab import Vocab, byte_token

PROG = "torchrnn-preprocess"
CHUNK_BYTES = 1 << 19  # bytes read at a time: small enough to stay in cache and keep
                      # the allocator from fragmenting (4 MiB chunks of wide text grew RSS)
_CODE_POINTS = 0x110000
SPLITS = ("train", "val", "test")   # the HDF5 datasets written, in order (data.py reads them)


def preprocess(input_txt, output_h5, output_json, val_frac=0.1, test_frac=0.1,
               encoding="utf-8", progress=None, on_written=None):
    """Preprocess ``input_txt`` into ``output_h5`` (/train, /val, /test) and ``output_json``.

    ``encoding`` is a Python codec name, or ``'bytes'`` (or None) for one token per byte with
    bytes above 127 named ``[N]``. ``progress(done_bytes, total_bytes)`` is called after each
    chunk; the file is read twice, so ``total_bytes`` is twice its size. Returns a dict with
    ``vocab_size``, ``total``, ``train_size``, ``val_size``, ``test_size``, ``dtype``,
    ``vocab``, ``idx_to_token`` and ``token_to_idx``. Existing outputs are replaced only when
    everything succeeded; then ``on_written(path)`` hears each file written (HDF5, JSON).
    """
    _check_fractions(val_frac, test_frac)
    codec = _lookup_codec(encoding)
    _check_paths(input_txt, output_h5, output_json)
    file_size = os.path.getsize(input_txt)
    report = _ProgressReport(progress, 2 * file_size)

    numbering = _FirstAppearance()
    for chunk in _code_point_chunks(input_txt, codec, report):
        numbering.add(chunk)
    total = numbering.total
    if total == 0:
        what = "is empty" if file_size == 0 else f"has no complete {codec.name} character"
        raise TorchRNNError(f"{input_txt}: no tokens to write: the input file {what}")

    val_size = int(val_frac * total)
    test_size = int(test_frac * total)
    train_size = total - val_size - test_size
    sizes = (train_size, val_size, test_size)
    vocab, dtype = _vocabulary(numbering, codec)

    import h5py  # here, so that importing this module stays cheap
    with atomic_outputs() as files:                    # both appear together, or neither
        tmp_h5 = files.temp_path(output_h5, "HDF5 output file")
        try:
            with h5py.File(tmp_h5, "w") as h5:
                datasets = [h5.create_dataset(name, shape=(size,), dtype=dtype)
                            for name, size in zip(SPLITS, sizes)]
                _write_ids(input_txt, codec, numbering, dtype, datasets, sizes, report)
        except (OSError, RuntimeError) as err:   # h5py: RuntimeError when closing after one
            raise TorchRNNError(f"{output_h5}: cannot write HDF5 output file: "
                                f"{_hdf5_reason(err)}") from None
        json.dump(vocab.to_json(), files.open(output_json, "w", "JSON output file",
                                              encoding="ascii"))
    if on_written is not None:
        on_written(output_h5)
        on_written(output_json)

    return {
        "vocab_size": len(vocab),
        "total": total,
        "train_size": train_size,
        "val_size": val_size,
        "test_size": test_size,
        "dtype": dtype,
        "vocab": vocab,
        "idx_to_token": dict(vocab.idx_to_token),
        "token_to_idx": dict(vocab.token_to_idx),
    }


def _check_paths(input_txt, output_h5, output_json):
    """The input is a readable regular file; the outputs can be written, and all differ."""
    check_input_file(input_txt, "input text file")
    if not os.path.isfile(input_txt):
        raise TorchRNNError(f"{input_txt}: input must be a regular file (it is read twice)")
    check_output_path(output_h5, "HDF5 output file")
    check_output_path(output_json, "JSON output file")
    if os.path.abspath(output_h5) == os.path.abspath(output_json):
        raise TorchRNNError(f"{output_h5}: the HDF5 and JSON outputs must be different files")
    check_distinct(input_text=input_txt, HDF5_output=output_h5, JSON_output=output_json)


def _vocabulary(numbering, codec):
    """The Vocab of the tokens in order of first appearance, and the dtype of their ids."""
    if codec is None:
        tokens = [byte_token(int(b)) for b in numbering.code_points]
    else:
        tokens = [chr(cp) for cp in numbering.code_points]
    vocab = Vocab(tokens)
    return vocab, (np.uint8 if len(vocab) <= 255 else np.uint32)


def _hdf5_reason(err):
    """One line for an h5py error: the system's reason when HDF5's message carries an
    errno (its own text spans lines and shows buffer addresses), else its first line."""
    if getattr(err, "strerror", None):
        return err.strerror
    message = str(err)
    found = re.search(r"errno = (\d+)", message)
    if found and int(found.group(1)) > 0:
        return os.strerror(int(found.group(1)))
    return message.splitlines()[0] if message.strip() else type(err).__name__


def _check_fractions(val_frac, test_frac):
    for name, value in (("val_frac", val_frac), ("test_frac", test_frac)):
        if not value >= 0:  # also catches NaN
            raise TorchRNNError(f"--{name} must be between 0 and 1, got {value}")
    if not val_frac + test_frac < 1:
        raise TorchRNNError(f"--val_frac + --test_frac must be below 1 (no training data "
                            f"otherwise), got {val_frac} + {test_frac}")


def _lookup_codec(encoding):
    """CodecInfo for a text codec name; None for 'bytes' (one token per byte)."""
    if encoding is None or encoding == "bytes":
        return None
    try:
        codec = codecs.lookup(encoding)
    except (LookupError, TypeError, ValueError):
        raise TorchRNNError(f"unknown encoding {encoding!r} (a Python codec name such as "
                            f"utf-8 or latin-1, or 'bytes')") from None
    if not getattr(codec, "_is_text_encoding", True):
        raise TorchRNNError(f"encoding {encoding!r} is not a text encoding")
    return codec


class _ProgressReport:
    """Calls the user's progress callback with bytes read so far over both passes."""

    def __init__(self, callback, total):
        self.callback, self.total, self.done = callback, total, 0

    def advance(self, nbytes):
        self.done += nbytes
        if self.callback is not None:
            self.callback(min(self.done, self.total), self.total)


def _drops_incomplete_tail(codec):
    """Whether the original's reader silently drops bytes left undecoded at end of file.

    codecs.open's pure-Python StreamReader decodes each read with final=False and never
    flushes at EOF, so a truncated last character (or utf-7 shift sequence) just vanishes;
    the C readers of the CJK codecs raise instead. We do what the original's reader did.
    """
    reader = getattr(codec, "streamreader", None)
    return getattr(reader, "read", None) is codecs.StreamReader.read


def _code_point_chunks(path, codec, report):
    """Yield the file's tokens chunk by chunk: bytes (each byte a code point < 256) or a
    uint32 array of code points, decoding with ``codec`` (None: raw bytes) incrementally."""
    decoder = None if codec is None else codec.incrementaldecoder("strict")
    offset = 0
    for raw in read_input_chunks(path, CHUNK_BYTES):
        if decoder is None:
            yield raw
        else:
            pending = _pending_bytes(decoder)
            try:
                text = decoder.decode(raw, False)
            except UnicodeError as err:            # UnicodeDecodeError, or utf-16's BOM
                raise _decode_error(path, codec, err, offset - pending) from None
            if text:
                yield _code_points(text)
        offset += len(raw)
        report.advance(len(raw))
    if decoder is not None and not _drops_incomplete_tail(codec):
        pending = _pending_bytes(decoder)
        try:
            text = decoder.decode(b"", True)
        except UnicodeError as err:
            raise _decode_error(path, codec, err, offset - pending) from None
        if text:
            yield _code_points(text)


def _pending_bytes(decoder):
    """How many input bytes the incremental decoder holds back, for error offsets."""
    try:
        state = decoder.getstate()[0]
        return len(state) if isinstance(state, (bytes, bytearray)) else 0
    except Exception:  # exotic decoders: offsets may then be off by a few bytes
        return 0


def _decode_error(path, codec, err, base_offset):
    """One line for a decoding failure: where and which bytes when the codec says so (a
    UnicodeDecodeError), else the codec's own reason (utf-16 without a BOM, punycode)."""
    advice = "give the file's real encoding with --encoding, or --encoding bytes"
    if not isinstance(err, UnicodeDecodeError):
        reason = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(err))
        reason = reason or type(err).__name__
        return TorchRNNError(f"{path}: cannot decode as {codec.name}: {reason}; {advice}")
    bad = err.object[err.start:err.end] if isinstance(err.object, (bytes, bytearray)) else b""
    shown = " ".join(f"0x{b:02x}" for b in bad[:8]) + (" ..." if len(bad) > 8 else "")
    return TorchRNNError(f"{path}: cannot decode as {codec.name}: {err.reason} at byte offset "
                         f"{base_offset + err.start} (bytes {shown}); {advice}")


def _code_points(text):
    """Code points of ``text``: bytes when all are below 256 (fast paths), else uint32."""
    if text.isascii():
        return text.encode("ascii")
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


class _FirstAppearance:
    """Numbers code points 1, 2, 3, ... in order of first appearance, chunk after chunk."""

    def __init__(self):
        self.ids = np.zeros(_CODE_POINTS, dtype=np.uint32)  # code point -> id, 0 = unseen
        self.code_points = []
        self.total = 0
        self._seen_small = bytearray()  # seen code points below 256, for bytes.translate

    def add(self, chunk):
        self.total += len(chunk)
        if isinstance(chunk, bytes):
            unseen = chunk.translate(None, self._seen_small)
            if unseen:
                present = np.flatnonzero(np.bincount(np.frombuffer(unseen, np.uint8),
                                                     minlength=256))
                firsts = [chunk.find(int(b)) for b in present]
                self._register([int(present[i]) for i in np.argsort(firsts)])
            return
        unseen = self.ids[chunk] == 0
        if unseen.any():
            values, firsts = np.unique(chunk[unseen], return_index=True)
            self._register(values[np.argsort(firsts, kind="stable")].tolist())

    def _register(self, new_code_points):
        for cp in new_code_points:
            self.code_points.append(cp)
            self.ids[cp] = len(self.code_points)
            if cp < 256:
                self._seen_small.append(cp)


def _write_ids(path, codec, numbering, dtype, datasets, sizes, report):
    """Second pass: map each chunk to ids and write it into train, then val, then test."""
    if dtype == np.uint8:
        small_table = numbering.ids[:256].astype(np.uint8).tobytes()
    ids_of = numbering.ids.astype(dtype) if dtype != np.uint32 else numbering.ids
    bounds = np.cumsum((0,) + tuple(sizes))
    position = 0
    for chunk in _code_point_chunks(path, codec, report):
        if isinstance(chunk, bytes) and dtype == np.uint8:
            ids = np.frombuffer(chunk.translate(small_table), dtype=np.uint8)
        elif isinstance(chunk, bytes):
            ids = ids_of[np.frombuffer(chunk, dtype=np.uint8)]
        else:
            ids = ids_of[chunk]
        if position + len(ids) > bounds[-1] or not ids.all():
            raise TorchRNNError(f"{path}: the input file changed while it was being read")
        for dataset, start, stop in zip(datasets, bounds[:-1], bounds[1:]):
            lo, hi = max(start, position), min(stop, position + len(ids))
            if lo < hi:
                dataset.write_direct(np.ascontiguousarray(ids[lo - position:hi - position]),
                                     dest_sel=np.s_[lo - start:hi - start])
        position += len(ids)
    if position != bounds[-1]:
        raise TorchRNNError(f"{path}: the input file changed while it was being read")
