"""BinToUTF8: any file as UTF-8 text (one character per byte) for torch-rnn, and back.

torch-rnn only learns text, so raw 8-bit audio (or any binary file) is turned into valid
UTF-8, a model is trained on it, and the sampled text is turned back into bytes. Two modes,
as in the original program (docs/compatibility.md, "bintoutf8"):

* ``offset``: byte ``b`` <-> ``U+3900 + b`` (always 3 bytes of UTF-8); needs no table.
* ``bcl`` (byte/character lookup, the default): byte values get characters first come,
  first served from a fixed alphabet -- the 92 printable ASCII characters ``#``..``~``, then
  ``U+3900``, ``U+3901``, ... -- so the bytes that start the file (the ones you would seed
  ``-start_text`` with) are ASCII. Space, ``!``, ``"`` and control characters are never used.
  The table is a ``.bcl`` file: 256 raw bytes, entry k = the byte value of slot k; slots
  that no byte used hold the absent byte values in ascending order, so the file is always
  a permutation of 0..255.

File names (our choices; the C++ port does the same for a plain ``bintoutf8 IN``):

* ``bintoutf8 IN`` writes ``IN.txt`` and, in bcl mode, the table beside the text with its
  extension replaced by ``.bcl``: ``voice.raw`` -> ``voice.raw.txt`` + ``voice.raw.bcl``.
* ``utf8tobin IN`` writes ``IN`` with its extension replaced by ``.bin`` (``IN.bin`` if that
  would be ``IN`` itself), and looks for the table the same way the encoder names it:
  ``voice.raw.txt`` -> table ``voice.raw.bcl``, output ``voice.raw.bin``.

Files are processed in chunks (a few MB) with numpy lookups, so speed is high and memory
bounded whatever the file size; bcl encoding reads the input twice (table, then text).
The command lines (``bintoutf8``, ``utf8tobin``) are in torchrnn_py/cli/bintoutf8.py.
"""
import codecs
import itertools
import os
from typing import NamedTuple, Optional

import numpy as np

from ..cmdline import UsageError
from ..errors import TorchRNNError
from ..fileio import (atomic_output, atomic_outputs, check_distinct, check_input_file,
                     check_name_stem, check_output_path, read_input_chunks, utf8_error)

MODES = ("bcl", "offset")
OFFSET_BASE = 0x3900
TABLE_SIZE = 256
TABLE_EXTENSION = ".bcl"
TEXT_EXTENSION = ".txt"
DECODED_EXTENSION = ".bin"
CHUNK_SIZE = 4 << 20  # bytes per read: bounds memory, large enough for numpy to be fast

#: The BCL alphabet: the character code point for slot k (k = 0..255).
N_ASCII_SLOTS = 0x7F - 0x23            # '#' .. '~': 92 printable ASCII characters
BCL_ALPHABET = tuple(list(range(0x23, 0x7F))
                     + [OFFSET_BASE + j for j in range(256 - N_ASCII_SLOTS)])

_BCL_CODEPOINTS = np.array(BCL_ALPHABET, dtype=np.uint16)
_OFFSET_CODEPOINTS = (OFFSET_BASE + np.arange(256)).astype(np.uint16)
_SCAN_WINDOW = 1 << 16  # bytes looked at per step when locating first appearances


class EncodeResult(NamedTuple):
    """What :func:`encode_file` did: sizes, and the table (bcl mode) and where it went."""
    bytes_in: int
    chars_out: int
    text_bytes: int
    table_path: Optional[str]
    table: Optional[bytes]


# --------------------------------------------------------------------------- tables

def check_table(table, source="table"):
    """Return ``table`` as a uint8 array of 256 entries, or raise if it is not a permutation.

    ``source`` names the table in the message (a file name, usually).
    """
    try:
        if isinstance(table, (int, str)):
            raise TypeError
        arr = table if isinstance(table, np.ndarray) else np.frombuffer(bytes(table), np.uint8)
    except (TypeError, ValueError):
        raise TorchRNNError(f"{source}: a table must be 256 byte values, found "
                            f"{type(table).__name__}") from None
    if arr.ndim != 1 or arr.size != TABLE_SIZE:
        raise TorchRNNError(f"{source}: a {TABLE_EXTENSION} table has {TABLE_SIZE} bytes, "
                            f"found {arr.size}")
    if arr.dtype != np.uint8:
        if arr.dtype.kind not in "iu" or arr.min() < 0 or arr.max() > 255:
            raise TorchRNNError(f"{source}: table entries must be byte values 0..255")
        arr = arr.astype(np.uint8)
    counts = np.bincount(arr, minlength=256)
    if counts.max() > 1:
        slots = np.flatnonzero(counts[arr] > 1)
        value = int(arr[slots[0]])
        where = np.flatnonzero(arr == value)
        missing = int(np.flatnonzero(counts == 0)[0])
        slots = ", ".join(map(str, where[:8].tolist())) + (", ..." if len(where) > 8 else "")
        raise TorchRNNError(
            f"{source}: not a valid {TABLE_EXTENSION} table: byte value {value} (0x{value:02X}) "
            f"appears {len(where)} times (slots {slots}) and "
            f"byte value {missing} (0x{missing:02X}) not at all; each must appear exactly once")
    return arr


def read_table(path):
    """Read a ``.bcl`` table file (256 raw bytes, a permutation of 0..255)."""
    check_input_file(path, what=f"{TABLE_EXTENSION} table")
    try:
        size = os.path.getsize(path)
        if size != TABLE_SIZE:
            raise TorchRNNError(f"{path}: a {TABLE_EXTENSION} table has {TABLE_SIZE} bytes, "
                                f"found {size}")
        with open(path, "rb") as f:
            data = f.read(TABLE_SIZE + 1)    # never more, whatever the file has become
    except OSError as err:
        raise TorchRNNError(f"{path}: cannot read {TABLE_EXTENSION} table: "
                            f"{err.strerror or err}") from None
    return check_table(data, path).tobytes()


def write_table(path, table):
    """Write ``table`` (256 byte values, a permutation) to ``path`` atomically."""
    arr = check_table(table)
    with atomic_output(path, "wb", what=f"{TABLE_EXTENSION} table") as f:
        f.write(arr.tobytes())


class TableBuilder:
    """Builds the BCL table first come, first served from data fed in chunks, in order.

    Only bytes whose value has not been seen yet are located (a 64 KB window at a time),
    so a chunk costs one pass of ``bincount`` once all its values are known.
    """

    def __init__(self):
        self.seen = np.zeros(256, dtype=bool)
        self.order = []

    @property
    def complete(self):
        """True once all 256 byte values have a slot (later data cannot change the table)."""
        return len(self.order) == TABLE_SIZE

    def feed(self, chunk):
        """Record the byte values that appear for the first time in ``chunk``."""
        data = _as_uint8(chunk)
        if self.complete or data.size == 0:
            return
        missing = (np.bincount(data, minlength=256) > 0) & ~self.seen
        start = 0
        while missing.any():
            window = data[start:start + _SCAN_WINDOW]
            hits = np.flatnonzero(np.take(missing, window))
            if hits.size:
                values, first = np.unique(window[hits], return_index=True)
                new = values[np.argsort(first, kind="stable")]
                self.order.extend(new.tolist())
                self.seen[new] = True
                missing[new] = False
            start += _SCAN_WINDOW

    def table(self):
        """The 256-byte table: slots in order of first appearance, then absent values."""
        rest = np.flatnonzero(~self.seen).tolist()
        return bytes(self.order + rest)


def build_table(data):
    """The BCL table (``.bcl`` content, 256 bytes) for ``data`` held in memory."""
    builder = TableBuilder()
    builder.feed(data)
    return builder.table()


# --------------------------------------------------------------------------- codecs

def _as_uint8(data):
    if isinstance(data, np.ndarray):
        return data.astype(np.uint8, copy=False).ravel()
    return np.frombuffer(data, dtype=np.uint8)


def check_mode(mode):
    """Refuse a BinToUTF8 mode other than bcl and offset."""
    if mode not in MODES:
        raise TorchRNNError(f"unknown mode {mode!r}: expected one of {', '.join(MODES)}")


def _codepoints(mode, table, source="table"):
    """Byte value -> code point (uint16[256]) for ``mode`` (and ``table`` in bcl mode)."""
    check_mode(mode)
    if mode == "offset":
        if table is not None:
            raise TorchRNNError("offset mode uses no table")
        return _OFFSET_CODEPOINTS
    arr = check_table(table, source)
    codepoints = np.empty(256, dtype=np.uint16)
    codepoints[arr] = _BCL_CODEPOINTS
    return codepoints


def _encode_chunk(codepoints, data):
    """Bytes -> str, one character per byte (code points are all below U+10000)."""
    return np.take(codepoints, _as_uint8(data)).tobytes().decode("utf-16-le")


def encode_bytes(data, mode="bcl", table=None):
    """Encode ``data`` as text; returns ``(text, table)``.

    In bcl mode ``table`` is built from ``data`` unless given (then bytes are mapped through
    it, e.g. to encode a seed with a model's table); offset mode returns ``table`` None.
    """
    check_mode(mode)
    if mode == "bcl" and table is None:
        table = build_table(data)
    codepoints = _codepoints(mode, table)
    table = None if mode == "offset" else check_table(table).tobytes()
    return _encode_chunk(codepoints, data), table


def _unknown_policy(unknown):
    """Validate the unknown-character policy: 'skip', 'error' or a byte value 0..255."""
    if unknown in ("skip", "error"):
        return unknown
    if isinstance(unknown, (int, np.integer)) and not isinstance(unknown, bool) \
            and 0 <= unknown <= 255:
        return int(unknown)
    raise TorchRNNError(f"invalid unknown-character policy {unknown!r}: expected 'skip', "
                        f"'error' or a byte value 0..255")


def describe_char(ch):
    """A character as a reader can see it: its repr and its code point."""
    return f"{ch!r} (U+{ord(ch):04X})"


class TextDecoder:
    """Decodes text to bytes chunk by chunk, applying the unknown-character policy.

    Counts the characters not in the table (``unknown``) and the characters seen
    (``chars``), so an error can say where the offending character is.
    """

    def __init__(self, mode="bcl", table=None, unknown="skip", source=None):
        codepoints = _codepoints(mode, table, source or "table")
        self.lookup = np.full(0x10001, -1, dtype=np.int16)  # index 0x10000: beyond the BMP
        self.lookup[codepoints] = np.arange(256, dtype=np.int16)
        self.policy = _unknown_policy(unknown)
        self.source = source
        self.chars = 0
        self.unknown = 0

    def decode(self, text):
        """Bytes for ``text`` (a str); characters not in the table follow the policy."""
        units = np.frombuffer(text.encode("utf-16-le", "surrogatepass"), dtype="<u2")
        if units.size != len(text):  # characters beyond U+FFFF: index by code point instead
            units = np.minimum(np.frombuffer(text.encode("utf-32-le", "surrogatepass"),
                                             dtype="<u4"), 0x10000)
        values = np.take(self.lookup, units)
        bad = values < 0
        n_bad = int(np.count_nonzero(bad))
        if n_bad:
            if self.policy == "error":
                i = int(np.argmax(bad))
                where = f"{self.source}: " if self.source else ""
                raise TorchRNNError(
                    f"{where}character {describe_char(text[i])} at character offset "
                    f"{self.chars + i} is not in the table (skip such characters or "
                    f"replace them with a byte to accept them)")
            if self.policy == "skip":
                values = values[~bad]
            else:
                values[bad] = self.policy
            self.unknown += n_bad
        self.chars += len(text)
        return values.astype(np.uint8).tobytes()


def decode_text(text, mode="bcl", table=None, unknown="skip"):
    """Decode ``text`` (str, or UTF-8 bytes) back to bytes; returns ``(data, unknown_count)``.

    ``unknown``: 'skip' drops characters not in the table (a trailing newline, a BOM),
    an int 0..255 writes that byte instead, 'error' raises TorchRNNError naming the
    character and its position. Bcl mode needs ``table`` (the ``.bcl`` content).
    """
    check_mode(mode)
    if mode == "bcl" and table is None:
        raise TorchRNNError("bcl mode needs the table written when encoding")
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as err:
            raise utf8_error(err) from None
    decoder = TextDecoder(mode, table, unknown)
    return decoder.decode(text), decoder.unknown


# --------------------------------------------------------------------------- files

def default_text_path(in_path):
    """Where ``bintoutf8 IN`` writes its text: ``IN.txt``."""
    return in_path + TEXT_EXTENSION


def default_table_path(text_path):
    """The table beside a text file: its extension replaced by ``.bcl``."""
    return os.path.splitext(text_path)[0] + TABLE_EXTENSION


def find_table(text_path, table_path=None):
    """(path, table) of the ``.bcl`` table for decoding ``text_path``: ``table_path``, or
    the text's name with the extension replaced; a clear error when it is not there."""
    hint = "" if table_path else " (give it with --table)"
    table_path = table_path or default_table_path(text_path)
    if not os.path.exists(table_path):
        raise TorchRNNError(f"{table_path}: {TABLE_EXTENSION} table not found; bcl mode "
                            f"needs the table written when encoding{hint}")
    return table_path, read_table(table_path)


def default_decoded_path(text_path):
    """Where ``utf8tobin IN`` writes its bytes: extension replaced by ``.bin``."""
    path = os.path.splitext(text_path)[0] + DECODED_EXTENSION
    return path if path != text_path else text_path + DECODED_EXTENSION


def _check_chunk_size(chunk_size):
    if not isinstance(chunk_size, int) or chunk_size <= 0:
        raise TorchRNNError(f"chunk size must be a positive integer, found {chunk_size!r}")


def build_table_from_file(path, chunk_size=CHUNK_SIZE):
    """The BCL table for a file, read in chunks (stops early once all 256 values are seen)."""
    check_input_file(path)
    _check_chunk_size(chunk_size)
    builder = TableBuilder()
    for chunk in read_input_chunks(path, chunk_size):
        builder.feed(chunk)
        if builder.complete:
            break
    return builder.table()


def encode_file(in_path, out_path=None, mode="bcl", table_path=None, table=None,
                chunk_size=CHUNK_SIZE, use_table=None):
    """Encode a binary file as UTF-8 text; in bcl mode also write its ``.bcl`` table.

    ``out_path`` defaults to ``IN.txt``; ``table_path`` to the output with its extension
    replaced by ``.bcl``. ``table`` (256 bytes), or the ``.bcl`` file ``use_table``, re-uses
    an existing table instead of building one; it is still written to ``table_path`` so
    decoding finds it. Offset mode takes no table: a UsageError. Nothing is replaced unless
    everything succeeded. Returns an :class:`EncodeResult`.
    """
    check_mode(mode)
    _check_chunk_size(chunk_size)
    if mode == "offset" and (table is not None or table_path or use_table):
        raise UsageError("--table and --use-table are for bcl mode; offset mode has no table")
    if use_table:
        if table is not None:
            raise TorchRNNError("give a table or a file to read it from (use_table), not both")
        table = read_table(use_table)
    check_input_file(in_path)
    out_path = out_path or default_text_path(in_path)
    if mode == "bcl" and not table_path:           # beside the text: only if it is a file
        table_path = default_table_path(out_path)
        check_name_stem(out_path, f"the default table {table_path}", "; give --table")
    check_distinct(input_file=in_path, text_output=out_path, table_output=table_path)
    check_output_path(out_path, "text output")
    if table_path:
        check_output_path(table_path, f"{TABLE_EXTENSION} table")

    if mode == "bcl":
        table = (check_table(table).tobytes() if table is not None
                 else build_table_from_file(in_path, chunk_size))
    codepoints = _codepoints(mode, table)
    bytes_in = text_bytes = 0
    with atomic_outputs() as files:                     # text and table appear together
        out = files.open(out_path, "wb", "text output")
        for chunk in read_input_chunks(in_path, chunk_size):
            encoded = _encode_chunk(codepoints, chunk).encode("utf-8")
            out.write(encoded)
            bytes_in += len(chunk)
            text_bytes += len(encoded)
        if table_path:
            files.open(table_path, "wb", f"{TABLE_EXTENSION} table").write(table)
    return EncodeResult(bytes_in, bytes_in, text_bytes, table_path, table)


def decode_file(in_path, out_path=None, mode="bcl", table_path=None, unknown="skip",
                table=None, chunk_size=CHUNK_SIZE):
    """Decode UTF-8 text back to bytes; returns how many characters were not in the table.

    ``out_path`` defaults to the input with its extension replaced by ``.bin``; in bcl mode
    the table comes from ``table`` (bytes), else ``table_path``, else the input with its
    extension replaced by ``.bcl`` (as :func:`encode_file` names it). UTF-8 is decoded
    incrementally, so characters split across chunks are fine, and the input may be a pipe
    (a FIFO, ``/dev/stdin``); a device such as /dev/zero is refused. Offset mode takes no
    table: a UsageError.
    """
    check_mode(mode)
    _check_chunk_size(chunk_size)
    policy = _unknown_policy(unknown)
    if mode == "offset" and (table is not None or table_path):
        raise UsageError("--table is for bcl mode; offset mode has no table")
    check_input_file(in_path, pipe_ok=True)        # read once, in chunks: a pipe works
    if not out_path:                               # IN.bin: never /dev/stdin.bin
        out_path = default_decoded_path(in_path)
        check_name_stem(in_path, f"the default output {out_path}", "; give OUT")
    if mode == "bcl" and table is None:
        table_path, table = find_table(in_path, table_path)
    check_distinct(input_file=in_path, output_file=out_path, table_file=table_path)
    check_output_path(out_path)

    decoder = TextDecoder(mode, table, policy, source=in_path)
    utf8 = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0
    with atomic_output(out_path, "wb") as out:
        for chunk in itertools.chain(read_input_chunks(in_path, chunk_size), [b""]):
            pending = len(utf8.getstate()[0])
            try:
                text = utf8.decode(chunk, final=not chunk)              # b"": the end
            except UnicodeDecodeError as err:
                raise utf8_error(err, in_path, offset - pending + err.start) from None
            offset += len(chunk)
            if text:
                out.write(decoder.decode(text))
    return decoder.unknown


# --------------------------------------------------------------------------- commands
