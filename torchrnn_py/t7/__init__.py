"""Read and write Torch7 serialised objects (``.t7`` files made by ``torch.save``), safely.

torch-rnn's checkpoints are Torch7 files, and people share them, so the reader treats every
file as hostile: it never executes anything (Lua functions stay opaque bytecode), never
allocates more than the file could hold, and turns every malformed file into one
:class:`T7FormatError` naming the file, the byte offset, what was expected and what was found.
Nesting is walked with an explicit stack, so deep or cyclic structures cannot overflow Python's
recursion limit.

Format (Torch7 ``File.lua``, ``generic/Tensor.c``, ``generic/Storage.c``): every value starts
with an int32 type tag -- nil 0, number 1 (float64), string 2 (int32 length + bytes), table 3,
torch object 4, boolean 5 (int32, true when 1), function 6, recursive function 7 (legacy) and 8.
Tables, torch objects and recursive functions then carry an int32 reference index; an index met
before is a back-reference, so shared objects and cycles are written once. New indices are
handed out 1, 2, 3, ... in the order objects are first written; this reader insists on that
order, so a "back-reference" to an index not yet defined is an error. A torch object has a
version string ``V 1`` and its class name (very old files write only the class name: version 0),
then either a tensor (int32 ndim, ndim "longs" of sizes, ndim of strides, a 1-based storage
offset, then the storage object or nil), a storage (a "long" count then the raw elements) or, for
every other class, a table of its fields (which takes its own reference index). "Long" is 8 bytes
unless the file was written with 4-byte longs (``torch.load(f, 'b32')``; pass ``long_size=4``).
Files are written in the writer's native byte order: little-endian files are the norm;
big-endian ones are recognised from their first tag and read too. Files saved in Torch7's ASCII
mode (``torch.save(f, obj, 'ascii')``) are recognised and read as well.

Python mapping (reader and writer):

============================  ===============================================================
Torch7 / Lua                  Python
============================  ===============================================================
nil                           ``None``
number                        ``float`` (always; callers convert to int where they need one)
boolean                       ``bool``
string                        ``str``, decoded as UTF-8 with ``errors='surrogateescape'`` so any
                              bytes survive a round trip (the writer also accepts ``bytes``)
table                         ``dict``; integral number keys become ``int``, other numbers stay
                              ``float``; string and boolean keys as above. A nil value is kept
                              as ``None``. (The writer also takes ``list``/``tuple``: keys 1..n.)
torch.{Double,Float,Half,     ``torch.Tensor`` on the CPU (float64, float32, float16, int64,
Long,Int,Short,Char,Byte}     int32, int16, int8, uint8). CUDA / OpenCL classes
Tensor                        (``torch.CudaTensor``, ``torch.CudaLongTensor``, ...,
                              ``torch.ClTensor``) load as the matching CPU dtype. Tensors that
                              view one storage share memory after loading. Torch7's empty
                              tensor (ndim 0) becomes a tensor of shape ``(0,)``.
torch.*Storage                :class:`Storage` (``class_name`` + a 1-D tensor ``data``)
any other torch class         :class:`TorchObject` (``class_name``, ``fields`` dict, ``version``)
function                      :class:`LuaFunction` (bytecode kept as bytes, never executed)
============================  ===============================================================

Writing: tensors are written under the class :func:`tensor_class_name` gives for their dtype
(so a checkpoint saved from a GPU loads as CPU classes and is written back as such). Tensors
whose memory is one block (same ``untyped_storage().data_ptr()``) share one written storage
object, each with its own offset and strides -- the layout train.lua's ``getParameters``
produces -- and the whole block is written, as Torch7 does. A tensor with no elements is
written as Torch7's empty tensor (ndim 0, nil storage); a 0-dim PyTorch scalar as a 1-element
1-D tensor. The same Python object reached twice is written once and back-referenced.

Output is little-endian binary (``mode="ascii"`` gives Torch7's ASCII form), written to a path
atomically. Trailing bytes after the root object are ignored, as ``torch.load`` ignores them.
Limits against hostile files: nesting deeper than ``MAX_DEPTH``, more than ``MAX_DIMS``
dimensions, and overlapping (stride-0) views above ``MAX_OVERLAPPING_VIEW_ELEMENTS`` are errors.
"""
import dataclasses
import math
import numbers
import os
import re
import struct
import types

import numpy as np
import torch

from ..errors import TorchRNNError
from ..fileio import atomic_output, check_input_file, describe_os_error

__all__ = [
    "T7FormatError", "TorchObject", "Storage", "LuaFunction",
    "read_t7", "loads_t7", "write_t7", "dumps_t7", "tensor_class_name",
]

TYPE_NIL = 0
TYPE_NUMBER = 1
TYPE_STRING = 2
TYPE_TABLE = 3
TYPE_TORCH = 4
TYPE_BOOLEAN = 5
TYPE_FUNCTION = 6
TYPE_LEGACY_RECUR_FUNCTION = 7
TYPE_RECUR_FUNCTION = 8

_TYPE_NAMES = {
    TYPE_NIL: "nil", TYPE_NUMBER: "number", TYPE_STRING: "string", TYPE_TABLE: "table",
    TYPE_TORCH: "torch object", TYPE_BOOLEAN: "boolean", TYPE_FUNCTION: "function",
    TYPE_LEGACY_RECUR_FUNCTION: "function", TYPE_RECUR_FUNCTION: "function",
}

#: Deepest nesting of tables / objects accepted (real checkpoints nest about 10 levels).
MAX_DEPTH = 10000
#: Most tensor dimensions accepted (Torch7 models use at most a handful).
MAX_DIMS = 64
#: A tensor may have more elements than its storage only through overlapping (stride 0)
#: views; such views are limited to this many elements so that using them cannot explode.
MAX_OVERLAPPING_VIEW_ELEMENTS = 1 << 24


class T7FormatError(TorchRNNError):
    """A file that is not a well-formed Torch7 serialisation (names file, offset, problem)."""


@dataclasses.dataclass(eq=False)
class TorchObject:
    """An instance of a Torch7 class other than tensors and storages (e.g. ``nn.LSTM``).

    ``fields`` is the table of its Lua fields; ``version`` the serialisation version (1 in
    every current file, 0 for files from before Torch7 versioned its objects). Compared by
    identity, like Lua objects, so shared and cyclic graphs behave.
    """
    class_name: str
    fields: dict
    version: int = 1

    def __getitem__(self, key):
        return self.fields[key]

    def __contains__(self, key):
        return key in self.fields

    def get(self, key, default=None):
        return self.fields.get(key, default)

    def __repr__(self):
        return f"<TorchObject {self.class_name} with {len(self.fields or ())} fields>"


@dataclasses.dataclass(eq=False)
class Storage:
    """A Torch7 storage (e.g. the ``torch.LongStorage`` holding an ``nn.View``'s size).

    ``class_name`` is the class found in the file; ``data`` a 1-D CPU tensor of its elements
    (tensors that view this storage share its memory). The writer derives the class written
    from ``data``'s dtype.
    """
    class_name: str
    data: torch.Tensor

    def __len__(self):
        return int(self.data.numel())

    def tolist(self):
        return self.data.tolist()

    def __repr__(self):
        return f"<Storage {self.class_name} of {len(self)} elements>"


@dataclasses.dataclass(eq=False)
class LuaFunction:
    """A serialised Lua function: its bytecode and upvalues, kept opaque and never run.

    ``type_tag`` is the tag it was stored under (6 plain, 7 legacy recursive, 8 recursive).
    """
    bytecode: bytes
    upvalues: object = None
    type_tag: int = TYPE_RECUR_FUNCTION

    def __repr__(self):
        return f"<LuaFunction of {len(self.bytecode)} bytes of bytecode>"


# --- class names and dtypes -------------------------------------------------------------------

_CPU_TYPES = {  # Torch7 type prefix -> numpy dtype
    "Double": np.float64, "Float": np.float32, "Half": np.float16, "Long": np.int64,
    "Int": np.int32, "Short": np.int16, "Char": np.int8, "Byte": np.uint8,
}
_CLASS_INFO = {}  # class name -> ("tensor" | "storage", numpy dtype)
for _prefix, _dtype in _CPU_TYPES.items():
    for _family in ("torch.", "torch.Cuda"):
        _CLASS_INFO[f"{_family}{_prefix}Tensor"] = ("tensor", np.dtype(_dtype))
        _CLASS_INFO[f"{_family}{_prefix}Storage"] = ("storage", np.dtype(_dtype))
for _name in ("torch.CudaTensor", "torch.ClTensor"):  # the float type of cutorch / cltorch
    _CLASS_INFO[_name] = ("tensor", np.dtype(np.float32))
    _CLASS_INFO[_name.replace("Tensor", "Storage")] = ("storage", np.dtype(np.float32))
del _prefix, _dtype, _family, _name
_CLASS_INFO.pop("torch.CudaFloatTensor")  # cutorch calls it torch.CudaTensor
_CLASS_INFO.pop("torch.CudaFloatStorage")

_DTYPE_TO_PREFIX = {
    torch.float64: "Double", torch.float32: "Float", torch.float16: "Half", torch.int64: "Long",
    torch.int32: "Int", torch.int16: "Short", torch.int8: "Char", torch.uint8: "Byte",
}
_TORCH_DTYPE = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32,
                np.dtype(np.float16): torch.float16, np.dtype(np.int64): torch.int64,
                np.dtype(np.int32): torch.int32, np.dtype(np.int16): torch.int16,
                np.dtype(np.int8): torch.int8, np.dtype(np.uint8): torch.uint8}


def tensor_class_name(tensor):
    """The Torch7 class a tensor is written as, from its dtype (float32 -> torch.FloatTensor)."""
    prefix = _DTYPE_TO_PREFIX.get(tensor.dtype)
    if prefix is None:
        raise TypeError(f"Torch7 has no tensor type for dtype {tensor.dtype}; convert the "
                        f"tensor to one of {', '.join(str(d) for d in _DTYPE_TO_PREFIX)}")
    return f"torch.{prefix}Tensor"


def _storage_class_name(dtype):
    prefix = _DTYPE_TO_PREFIX.get(dtype)
    if prefix is None:
        raise TypeError(f"Torch7 has no storage type for dtype {dtype}")
    return f"torch.{prefix}Storage"


def _is_fixed_width(dtype):
    """Byte and Char arrays are raw bytes even in ASCII files."""
    return dtype.itemsize == 1


# --- byte sources -----------------------------------------------------------------------------

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


_WHITESPACE = b" \t\n\r\v\f"
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


# --- format detection -------------------------------------------------------------------------

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


# --- the reader -------------------------------------------------------------------------------

_BEING_READ = object()  # placeholder for a tensor whose storage is still being read


class _Reader:
    """Reads one object graph; containers are generators driven by an explicit stack."""

    def __init__(self, source):
        self.src = source
        self.objects = {}
        self.next_index = 1

    def read_root(self):
        value = self._value()
        if not isinstance(value, types.GeneratorType):
            return value
        stack = [value]
        sent = None
        while stack:
            try:
                stack[-1].send(sent)  # runs until the generator wants its next value
            except StopIteration as done:
                stack.pop()
                sent = done.value
                continue
            value = self._value()
            if isinstance(value, types.GeneratorType):
                if len(stack) >= MAX_DEPTH:
                    raise self.src.error(self.src.pos, f"objects nested more than {MAX_DEPTH} "
                                                       f"levels deep; refusing to read further")
                stack.append(value)
                sent = None
            else:
                sent = value
        return sent

    def _value(self):
        """A leaf value, or a generator that reads a container (fed its sub-values)."""
        src = self.src
        at = src.pos
        tag = src.int32("a type tag")
        if tag == TYPE_NIL:
            return None
        if tag == TYPE_NUMBER:
            return src.double("a number (float64)")
        if tag == TYPE_STRING:
            return self._string("a string").decode("utf-8", "surrogateescape")
        if tag == TYPE_BOOLEAN:
            return src.int32("a boolean (int32)") == 1
        if tag == TYPE_FUNCTION:
            return self._function(None, tag)
        if tag in (TYPE_TABLE, TYPE_TORCH, TYPE_RECUR_FUNCTION, TYPE_LEGACY_RECUR_FUNCTION):
            index_at = src.pos
            index = src.int32("an object reference index")
            if index in self.objects:
                obj = self.objects[index]
                if obj is _BEING_READ:
                    raise src.error(index_at, f"object #{index} refers to itself from inside "
                                              f"its own tensor payload")
                return obj
            if index != self.next_index:
                raise src.error(index_at, f"expected a back-reference to an object read so far "
                                          f"(1..{self.next_index - 1}) or the next new object "
                                          f"#{self.next_index}, found index {index}")
            self.next_index += 1
            if tag == TYPE_TABLE:
                return self._table(index)
            if tag == TYPE_TORCH:
                return self._torch(index)
            return self._function(index, tag)
        raise src.error(at, f"expected a type tag (0 to 8), found {tag}")

    def _string(self, what):
        at = self.src.pos
        n = self.src.int32(f"the length of {what}")
        self.src.check_count(n, 1, f"the length of {what}", at)
        return self.src.chars(n, what)

    def _table(self, index):
        src = self.src
        at = src.pos
        n = src.int32("a table size")
        src.check_count(n, 2 * src.min_value_bytes, "the table size", at)
        table = {}
        self.objects[index] = table  # before the contents: tables may contain themselves
        for _ in range(n):
            key_at = src.pos
            key = yield
            value = yield
            table[self._key(key, key_at)] = value
        return table

    def _key(self, key, at):
        if isinstance(key, float):
            if math.isnan(key):
                raise self.src.error(at, "expected a table key, found NaN (Lua forbids it)")
            if key.is_integer():
                return int(key)
            return key
        if key is None:
            raise self.src.error(at, "expected a table key, found nil (Lua forbids it)")
        try:
            hash(key)
        except TypeError:
            raise self.src.error(at, f"a {type(key).__name__} used as a table key is not "
                                     f"supported") from None
        return key

    def _function(self, index, tag):
        bytecode = self._string("function bytecode")
        function = LuaFunction(bytecode, None, tag)
        if index is not None:
            self.objects[index] = function
        function.upvalues = yield
        return function

    def _class_name(self):
        src = self.src
        version_at = src.pos
        first = self._string("a version string or class name")
        version = _parse_version(first)
        if version is None:
            raw, version, name_at = first, 0, version_at
        else:
            name_at = src.pos
            raw = self._string("a class name")
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise src.error(name_at, f"expected a class name, found non-UTF-8 bytes "
                                     f"{_show(raw)}") from None
        if not name or not name.isprintable() or " " in name:
            raise src.error(name_at, f"expected a class name, found {name!r}")
        return name, version

    def _torch(self, index):
        class_name, version = self._class_name()
        info = _CLASS_INFO.get(class_name)
        if info is None:
            return (yield from self._plain_object(index, class_name, version))
        kind, dtype = info
        if kind == "storage":
            storage = self._storage(class_name, dtype)
            self.objects[index] = storage
            return storage
        self.objects[index] = _BEING_READ
        tensor = yield from self._tensor(class_name, dtype)
        self.objects[index] = tensor
        return tensor

    def _plain_object(self, index, class_name, version):
        src = self.src
        obj = TorchObject(class_name, None, version)
        self.objects[index] = obj
        at = src.pos
        tag = src.peek_int32("the field table of a " + class_name)
        if tag != TYPE_TABLE:
            raise src.error(at, f"cannot read torch object of class <{class_name}>: expected "
                                f"its table of fields (type tag 3), found type tag {tag}")
        fields = yield
        if not isinstance(fields, dict):
            raise src.error(at, f"cannot read torch object of class <{class_name}>: its fields "
                                f"refer to a {type(fields).__name__}, not a table")
        obj.fields = fields
        return obj

    def _storage(self, class_name, dtype):
        src = self.src
        at = src.pos
        count = src.long(f"the element count of a {class_name}")
        width = src.long_size if dtype == np.int64 else dtype.itemsize
        if isinstance(src, _AsciiSource) and not _is_fixed_width(dtype):
            width = 1
        if count < 0 or count * width > src.remaining():
            absurd = count < 0 or count >= 1 << 32
            raise src.error(at, f"a {class_name} claims {count} elements ({count * width} "
                                f"bytes) but only {src.remaining()} bytes remain in the file "
                                f"(truncated or corrupt)" + (_long_size_hint(src) if absurd
                                                             else ""))
        data = src.array(dtype, count, f"the {count} elements of a {class_name}")
        return Storage(class_name, torch.from_numpy(data))

    def _tensor(self, class_name, dtype):
        src = self.src
        at = src.pos
        ndim = src.int32(f"the dimension count of a {class_name}")
        if not 0 <= ndim <= MAX_DIMS:
            raise src.error(at, f"expected the dimension count of a {class_name} "
                                f"(0 to {MAX_DIMS}), found {ndim}")
        a = "an" if str(ndim).startswith("8") or ndim in (11, 18) else "a"
        sizes = src.longs(ndim, f"the sizes of {a} {ndim}-D {class_name}")
        strides = src.longs(ndim, f"the strides of {a} {ndim}-D {class_name}")
        offset = src.long(f"the storage offset of a {class_name}")
        storage_at = src.pos
        storage = yield
        if storage is not None and not isinstance(storage, Storage):
            raise src.error(storage_at, f"expected the storage of a {class_name}, found a "
                                        f"{type(storage).__name__}" + _long_size_hint(src))
        if storage is not None:
            wanted = class_name[:-len("Tensor")] + "Storage"
            if storage.class_name != wanted:
                raise src.error(storage_at, f"expected a {wanted} for a {class_name}, found a "
                                            f"{storage.class_name}" + _long_size_hint(src))
        try:
            return self._view(storage, dtype, sizes, strides, offset)
        except ValueError as err:
            raise src.error(at, f"bad {ndim}-D {class_name} (sizes {sizes}, strides {strides}, "
                                f"storage offset {offset}): {err}" + _long_size_hint(src)) \
                from None

    @staticmethod
    def _view(storage, dtype, sizes, strides, offset):
        """The tensor, as a view of ``storage`` where it has elements; checks it fits."""
        tdtype = _TORCH_DTYPE[dtype]
        if any(s < 0 for s in sizes):
            raise ValueError("negative size")
        if not sizes:
            return torch.empty(0, dtype=tdtype)
        numel = math.prod(sizes)
        if numel == 0:
            if math.prod(s for s in sizes if s) > 1 << 62:
                raise ValueError("sizes too large")
            return torch.empty(sizes, dtype=tdtype)
        if storage is None:
            raise ValueError(f"{numel} elements but no storage")
        if any(s < 0 for s in strides):
            raise ValueError("negative stride")
        if offset < 1:
            raise ValueError("the storage offset (1-based) is below 1")
        count = len(storage)
        last = offset - 1 + sum((size - 1) * stride for size, stride in zip(sizes, strides))
        if last >= count:
            raise ValueError(f"it reaches element {last + 1} of a storage of {count}")
        if numel > count and numel > MAX_OVERLAPPING_VIEW_ELEMENTS:
            raise ValueError(f"{numel} elements overlapping in a storage of {count}")
        return storage.data.as_strided(sizes, strides, offset - 1)


def _parse_version(raw):
    """The number in a ``V <n>`` version string, or None when ``raw`` is a class name."""
    if not raw.startswith(b"V "):
        return None
    try:
        text = raw[2:].decode("ascii").strip()
        value = float.fromhex(text) if text.lower().startswith(("0x", "-0x")) else float(text)
    except (UnicodeDecodeError, ValueError):
        return None
    if not math.isfinite(value):
        return None
    return int(value) if value.is_integer() else value


def _long_size_hint(src):
    if isinstance(src, _BinarySource) and src.long_size == 8:
        return " (if the file was written with 4-byte longs, read it with long_size=4)"
    return ""


def _check_long_size(long_size):
    if long_size not in (4, 8):
        raise ValueError(f"long_size must be 4 or 8, not {long_size!r}")


def loads_t7(data, long_size=8, name="<bytes>"):
    """Read one Torch7 object from bytes (see the module docstring for the mapping)."""
    _check_long_size(long_size)
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise TypeError(f"loads_t7 expects bytes, not {type(data).__name__}")
    source = _open_source(data, name, long_size)
    try:
        return _Reader(source).read_root()
    except T7FormatError:
        raise
    except (struct.error, ValueError, OverflowError, IndexError, MemoryError,
            RuntimeError) as err:  # a safety net: should not happen, but must not escape
        raise source.error(source.pos, f"unreadable data ({type(err).__name__}: {err})") \
            from None


def read_t7(source, long_size=8):
    """Read a Torch7 file from a path, a binary file object, or bytes.

    A missing or unreadable path raises TorchRNNError; a malformed file T7FormatError.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return loads_t7(source, long_size)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        check_input_file(path, "Torch7 file")
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as err:
            raise TorchRNNError(describe_os_error(path, err)) from None
        return loads_t7(data, long_size, name=path)
    data = source.read()
    if not isinstance(data, bytes):
        raise TypeError("read_t7 needs a file opened in binary mode")
    return loads_t7(data, long_size, name=str(getattr(source, "name", "<stream>")))


# --- the writer -------------------------------------------------------------------------------

class _BinarySink:
    """Little-endian binary output, gathered as chunks."""

    def __init__(self, long_size):
        self.chunks = []
        self.long_size = long_size
        self._long = struct.Struct("<q" if long_size == 8 else "<i")
        self._lfmt = "q" if long_size == 8 else "i"

    def int32(self, value):
        self.chunks.append(struct.pack("<i", value))

    def double(self, value):
        self.chunks.append(struct.pack("<d", value))

    def long(self, value):
        self.chunks.append(self._long.pack(value))

    def longs(self, values):
        self.chunks.append(struct.pack(f"<{len(values)}{self._lfmt}", *values))

    def chars(self, raw):
        self.chunks.append(raw)

    def array(self, arr):
        if arr.dtype == np.int64 and self.long_size == 4:
            arr = _to_int32(arr)
        self.chunks.append(arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes())


class _AsciiSink(_BinarySink):
    """Torch7's ASCII mode, as THDiskFile writes it (``%.17g`` doubles, ``%.9g`` floats)."""

    def int32(self, value):
        self.chunks.append(b"%d\n" % value)

    def double(self, value):
        self.chunks.append(b"%.17g\n" % value)

    long = int32

    def longs(self, values):
        if values:
            self.chunks.append(b" ".join(b"%d" % v for v in values) + b"\n")

    def chars(self, raw):
        if raw:
            self.chunks.append(raw + b"\n")

    def array(self, arr):
        if not arr.size:
            return
        if _is_fixed_width(arr.dtype):
            self.chars(arr.tobytes())
            return
        fmt = b"%d" if arr.dtype.kind in "iu" else (b"%.17g" if arr.dtype == np.float64
                                                     else b"%.9g")
        self.chunks.append(b" ".join(fmt % v for v in arr.tolist()) + b"\n")


def _to_int32(arr):
    if arr.size and (arr.min() < -(1 << 31) or arr.max() >= 1 << 31):
        raise ValueError("a LongStorage value does not fit in 4-byte longs")
    return arr.astype(np.int32)


class _Writer:
    """Writes one object graph; containers are generators of their children."""

    def __init__(self, sink):
        self.out = sink
        self.memo = {}        # id(python object) -> reference index
        self.storages = {}    # memory key -> reference index of the written storage
        self.keep_alive = []  # objects whose ids are in memo
        self.next_index = 1

    def write_root(self, obj):
        children = self._emit(obj)
        if children is None:
            return
        stack = [children]
        while stack:
            child = next(stack[-1], _DONE)
            if child is _DONE:
                stack.pop()
                continue
            children = self._emit(child)
            if children is not None:
                stack.append(children)

    def _new_index(self, obj):
        """The reference index of ``obj``: (index, True) when it is written for the first time."""
        index = self.memo.get(id(obj))
        if index is not None:
            return index, False
        index = self.next_index
        self.next_index += 1
        self.memo[id(obj)] = index
        self.keep_alive.append(obj)
        return index, True

    def _emit(self, obj):
        """Write ``obj``'s header; returns an iterator of the children still to write."""
        out = self.out
        if obj is None:
            out.int32(TYPE_NIL)
        elif isinstance(obj, (bool, np.bool_)):
            out.int32(TYPE_BOOLEAN)
            out.int32(1 if obj else 0)
        elif isinstance(obj, numbers.Real) and not isinstance(obj, torch.Tensor):
            out.int32(TYPE_NUMBER)
            out.double(float(obj))
        elif isinstance(obj, (str, bytes, bytearray, memoryview)):
            raw = obj.encode("utf-8", "surrogateescape") if isinstance(obj, str) else bytes(obj)
            out.int32(TYPE_STRING)
            out.int32(len(raw))
            out.chars(raw)
        elif isinstance(obj, (dict, list, tuple)):
            out.int32(TYPE_TABLE)
            index, new = self._new_index(obj)
            out.int32(index)
            if new:
                items = obj.items() if isinstance(obj, dict) else \
                    ((i, v) for i, v in enumerate(obj, 1))
                out.int32(len(obj))
                return _pairs(items)
        elif isinstance(obj, torch.Tensor):
            self._tensor(obj)
        elif isinstance(obj, Storage):
            self._storage_ref(obj)
        elif isinstance(obj, TorchObject):
            return self._object(obj)
        elif isinstance(obj, LuaFunction):
            return self._function(obj)
        else:
            raise TypeError(f"cannot write a {type(obj).__name__} to a Torch7 file")
        return None

    def _header(self, version, class_name):
        if version == 0:
            name = class_name.encode("utf-8")
            self.out.int32(len(name))
            self.out.chars(name)
            return
        for raw in (b"V %s" % str(version).encode("ascii"), class_name.encode("utf-8")):
            self.out.int32(len(raw))
            self.out.chars(raw)

    def _object(self, obj):
        if obj.class_name in _CLASS_INFO:
            raise TypeError(f"a TorchObject cannot have the tensor/storage class "
                            f"{obj.class_name}; write a torch.Tensor or Storage instead")
        if not isinstance(obj.fields, dict):
            raise TypeError(f"the fields of a {obj.class_name} must be a dict, not "
                            f"{type(obj.fields).__name__}")
        self.out.int32(TYPE_TORCH)
        index, new = self._new_index(obj)
        self.out.int32(index)
        if not new:
            return None
        self._header(obj.version, obj.class_name)
        return iter((obj.fields,))

    def _function(self, func):
        tag = func.type_tag
        if tag not in (TYPE_FUNCTION, TYPE_LEGACY_RECUR_FUNCTION, TYPE_RECUR_FUNCTION):
            raise ValueError(f"LuaFunction.type_tag must be 6, 7 or 8, not {tag!r}")
        self.out.int32(tag)
        if tag != TYPE_FUNCTION:
            index, new = self._new_index(func)
            self.out.int32(index)
            if not new:
                return None
        self.out.int32(len(func.bytecode))
        self.out.chars(bytes(func.bytecode))
        return iter((func.upvalues,))

    def _tensor(self, tensor):
        out = self.out
        class_name = tensor_class_name(tensor)
        if tensor.layout != torch.strided:
            raise TypeError(f"cannot write a {tensor.layout} tensor to a Torch7 file")
        out.int32(TYPE_TORCH)
        index, new = self._new_index(tensor)
        out.int32(index)
        if not new:
            return
        self._header(1, class_name)
        tensor = tensor.detach()
        if tensor.numel() == 0:
            out.int32(0)
            out.long(1)
            out.int32(TYPE_NIL)
            return
        if tensor.dim() == 0:
            sizes, strides = [1], [1]
        else:
            sizes, strides = list(tensor.shape), list(tensor.stride())
        out.int32(len(sizes))
        out.longs(sizes)
        out.longs(strides)
        out.long(tensor.storage_offset() + 1)
        untyped = tensor.untyped_storage()
        count = untyped.nbytes() // tensor.element_size()
        key = (str(tensor.device), untyped.data_ptr(), tensor.dtype)
        self._storage(key, tensor.dtype, lambda: tensor.as_strided((count,), (1,), 0))

    def _storage_ref(self, storage):
        data = storage.data.detach()
        if data.dim() != 1:
            raise TypeError(f"Storage.data must be a 1-D tensor, not {data.dim()}-D")
        untyped = data.untyped_storage()
        whole = (data.storage_offset() == 0 and data.stride(0) == 1 and untyped.nbytes() ==
                 data.numel() * data.element_size() and untyped.nbytes() > 0)
        key = (str(data.device), untyped.data_ptr(), data.dtype) if whole else \
            ("storage object", id(storage))
        if not whole:
            self.keep_alive.append(storage)
        self._storage(key, data.dtype, lambda: data)

    def _storage(self, key, dtype, elements):
        """Write a storage object, or a back-reference to the one written for ``key``."""
        out = self.out
        class_name = _storage_class_name(dtype)
        out.int32(TYPE_TORCH)
        index = self.storages.get(key)
        if index is not None:
            out.int32(index)
            return
        index = self.next_index
        self.next_index += 1
        self.storages[key] = index
        out.int32(index)
        self._header(1, class_name)
        arr = elements().cpu().contiguous().numpy()
        out.long(arr.size)
        out.array(arr)


_DONE = object()


def _pairs(items):
    for key, value in items:
        if key is None or (isinstance(key, float) and math.isnan(key)):
            raise ValueError(f"Lua tables cannot have the key {key!r}")
        yield key
        yield value


def dumps_t7(obj, long_size=8, mode="binary"):
    """Serialise ``obj`` as Torch7 would (``torch.save``); returns the bytes.

    ``mode`` is "binary" (little-endian, what torch.save writes by default) or "ascii".
    """
    _check_long_size(long_size)
    if mode == "binary":
        sink = _BinarySink(long_size)
    elif mode == "ascii":
        sink = _AsciiSink(long_size)
    else:
        raise ValueError(f"mode must be 'binary' or 'ascii', not {mode!r}")
    _Writer(sink).write_root(obj)
    return b"".join(sink.chunks)


def write_t7(target, obj, long_size=8, mode="binary", what="Torch7 file"):
    """Write ``obj`` to a path (atomically: a failed write leaves the old file) or file object."""
    data = dumps_t7(obj, long_size=long_size, mode=mode)
    if isinstance(target, (str, os.PathLike)):
        with atomic_output(os.fspath(target), "wb", what=what) as f:
            f.write(data)
    else:
        target.write(data)

