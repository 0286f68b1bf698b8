"""Byte sources of the reader: Torch7's binary encoding (either byte order, 8- or 4-byte
longs) and its ASCII mode, and the choice between them from a file's first bytes (or a clear
error saying what the file is instead)."""
import re
import struct

import numpy as np

from .objects import TYPE_RECUR_FUNCTION, T7FormatError, _is_fixed_width


class _Source:
    """Shared bookkeeping of the binary and ASCII sources: position, limits, errors."""

    def __init__(self, data, name, long_size):
        self.data = data
        self.name = name
        self.long_size = long_size
        self.pos = 0
        self.end = len(data)

    def error(self, offset, message):
        return T7FormatError(f"{self.name}: byte {offset}: {message}")

    def remaining(self):
        return self.end - self.pos

    def peek_int32(self, what):
        """The next int32 without consuming it."""
        pos = self.pos
        try:
            return self.int32(what)
        finally:
            self.pos = pos

    def check_count(self, count, min_bytes_each, what, offset):
        """Reject a count of items that the rest of the file cannot possibly hold."""
        if count < 0:
            raise self.error(offset, f"expected {what} to be non-negative, found {count}")
        need = count * min_bytes_each
        if need > self.remaining():
            raise self.error(offset, f"{what} is {count}, which needs at least {need} more "
                                     f"bytes, but only {self.remaining()} remain in the file "
                                     f"(truncated or corrupt)")


class _BinarySource(_Source):
    """Fixed-width fields in one byte order."""

    def __init__(self, data, name, long_size, endian):
        super().__init__(data, name, long_size)
        self.endian = endian
        self._int = struct.Struct(endian + "i")
        self._double = struct.Struct(endian + "d")
        self._long = struct.Struct(endian + ("q" if long_size == 8 else "i"))
        self.min_value_bytes = 4

    def _take(self, n, what):
        if n > self.end - self.pos:
            raise self.error(self.pos, f"expected {what} ({n} bytes), found the end of the file"
                             + (f" after {self.end - self.pos} bytes"
                                if self.end > self.pos else "") + " (the file is truncated)")
        start = self.pos
        self.pos += n
        return start

    def int32(self, what):
        return self._int.unpack_from(self.data, self._take(4, what))[0]

    def double(self, what):
        return self._double.unpack_from(self.data, self._take(8, what))[0]

    def long(self, what):
        return self._long.unpack_from(self.data, self._take(self.long_size, what))[0]

    def longs(self, n, what):
        fmt = f"{self.endian}{n}{'q' if self.long_size == 8 else 'i'}"
        return list(struct.unpack_from(fmt, self.data, self._take(n * self.long_size, what)))

    def chars(self, n, what):
        start = self._take(n, what)
        return bytes(self.data[start:start + n])

    def array(self, dtype, n, what):
        """``n`` elements of ``dtype`` as a fresh, writable, native-order numpy array."""
        width = self.long_size if dtype == np.int64 else dtype.itemsize
        on_disk = np.dtype(dtype if width == dtype.itemsize else np.int32).newbyteorder(
            self.endian)
        start = self._take(n * width, what)
        return np.frombuffer(self.data, dtype=on_disk, count=n, offset=start).astype(
            dtype.newbyteorder("="), copy=True)


_TOKEN = re.compile(rb"[ \t\n\r\v\f]*([^ \t\n\r\v\f]+)")
_INT_TOKEN = re.compile(rb"[+-]?[0-9]+\Z")


class _AsciiSource(_Source):
    """Torch7's ASCII mode: numbers as text separated by whitespace, chars raw.

    Mirrors ``THDiskFile``: numbers are read like ``fscanf`` (leading whitespace skipped); after
    each read of n > 0 items one newline is swallowed ("auto-spacing"); char and byte arrays are
    raw bytes.
    """
    min_value_bytes = 1

    def _token(self, what):
        m = _TOKEN.match(self.data, self.pos)
        if m is None:
            raise self.error(self.pos, f"expected {what}, found the end of the file (the file "
                                       f"is truncated)")
        self.pos = m.end()
        return m.start(1), m.group(1)

    def _end_of_item(self):
        if self.pos < self.end and self.data[self.pos] == 0x0A:
            self.pos += 1

    def _integer(self, what, bits):
        start, tok = self._token(what)
        if len(tok) > 24 or not _INT_TOKEN.match(tok):
            raise self.error(start, f"expected {what} (an integer), found {_show(tok)}")
        value = int(tok)
        if not -(1 << (bits - 1)) <= value < (1 << (bits - 1)):
            raise self.error(start, f"expected {what} (a {bits}-bit integer), found {value}")
        return value

    def int32(self, what):
        value = self._integer(what, 32)
        self._end_of_item()
        return value

    def _float(self, what):
        start, tok = self._token(what)
        try:
            text = tok.decode("ascii")
            try:
                return float(text)
            except ValueError:
                return float.fromhex(text)
        except (UnicodeDecodeError, ValueError, OverflowError):
            raise self.error(start, f"expected {what} (a number), found {_show(tok)}") from None

    def double(self, what):
        value = self._float(what)
        self._end_of_item()
        return value

    def long(self, what):
        value = self._integer(what, 64)
        self._end_of_item()
        return value

    def longs(self, n, what):
        values = [self._integer(what, 64) for _ in range(n)]
        if n:
            self._end_of_item()
        return values

    def chars(self, n, what):
        if n > self.end - self.pos:
            raise self.error(self.pos, f"expected {what} ({n} bytes), found the end of the file "
                                       f"(the file is truncated)")
        out = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        if n:
            self._end_of_item()
        return out

    def array(self, dtype, n, what):
        if _is_fixed_width(dtype):
            return np.frombuffer(self.chars(n, what), dtype=dtype).copy()
        if dtype.kind == "f":
            values = [self._float(what) for _ in range(n)]
        else:
            values = [self._integer(what, 64) for _ in range(n)]
        if n:
            self._end_of_item()
        try:
            with np.errstate(over="ignore"):
                return np.array(values, dtype=dtype)
        except (OverflowError, ValueError):
            raise self.error(self.pos, f"{what}: a value does not fit in {dtype}") from None


def _show(raw, limit=40):
    """A short printable rendering of some bytes for error messages."""
    text = repr(bytes(raw[:limit]))
    return text + ("..." if len(raw) > limit else "")


_NOT_T7 = [  # (prefix, what the file looks like instead)
    (b"PK\x03\x04", "a zip archive (a PyTorch torch.save file?), not a Torch7 file"),
    (b"\x80\x02", "a Python pickle (an old PyTorch torch.save file?), not a Torch7 file"),
    (b"\x1f\x8b", "gzip-compressed; decompress it first"),
    (b"\x89HDF", "an HDF5 file (the training data?), not a Torch7 checkpoint"),
    (b"version https://git-lfs", "a Git LFS pointer, not the checkpoint itself; fetch it "
                                 "with 'git lfs pull'"),
    (b"{", "JSON text (the vocabulary .json?), not a Torch7 checkpoint"),
    (b"<", "HTML or XML text (a web page saved instead of the file?), not a Torch7 file"),
]
_ASCII_START = re.compile(rb"[ \t\n\r\v\f]*[+-]?[0-9]+[ \t\n\r\v\f]")


def _open_source(data, name, long_size):
    """Pick the right reader for the file's encoding from its first bytes."""
    if len(data) == 0:
        raise T7FormatError(f"{name}: the file is empty, expected a Torch7 object")
    if len(data) < 4 and not _ASCII_START.match(bytes(data)):
        raise T7FormatError(f"{name}: the file is only {len(data)} bytes long, too short for a "
                            f"Torch7 object (truncated?)")
    head = bytes(data[:4])
    if len(head) == 4:
        if 0 <= struct.unpack("<i", head)[0] <= TYPE_RECUR_FUNCTION:
            return _BinarySource(data, name, long_size, "<")
        if 0 <= struct.unpack(">i", head)[0] <= TYPE_RECUR_FUNCTION:
            return _BinarySource(data, name, long_size, ">")
    if _ASCII_START.match(bytes(data[:64])):
        return _AsciiSource(data, name, long_size)
    for prefix, what in _NOT_T7:
        if bytes(data[:len(prefix)]) == prefix:
            raise T7FormatError(f"{name}: the file is {what}")
    raise T7FormatError(f"{name}: byte 0: expected a Torch7 type tag (0 to 8), found "
                        f"{_show(data[:8])}; this is not a Torch7 file")

