"""The safe reader: one object graph from a Torch7 file, walked with an explicit stack, every
malformed file one :class:`T7FormatError` (docs/compatibility.md, "t7 format")."""
import math
import os
import types

import numpy as np
import torch

from ..errors import TorchRNNError
from ..fileio import read_input_bytes
from .objects import (_CLASS_INFO, _TORCH_DTYPE, TYPE_BOOLEAN, TYPE_FUNCTION,
                      TYPE_LEGACY_RECUR_FUNCTION, TYPE_NIL, TYPE_NUMBER, TYPE_RECUR_FUNCTION,
                      TYPE_STRING, TYPE_TABLE, TYPE_TORCH, LuaFunction, Storage, TableKey,
                      TorchObject,
                      _check_long_size, _is_fixed_width)
from .sources import _AsciiSource, _BinarySource, _open_source, _show

#: Deepest nesting of tables / objects accepted (real checkpoints nest about 10 levels).
MAX_DEPTH = 10000
#: Most tensor dimensions accepted (Torch7 models use at most a handful).
MAX_DIMS = 64
#: A tensor may have more elements than its storage only through overlapping (stride 0)
#: views; such views are limited to this many elements so that using them cannot explode.
MAX_OVERLAPPING_VIEW_ELEMENTS = 1 << 24


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
        if isinstance(key, dict):  # a table keyed by a table (nngraph): identity, as in Lua
            return TableKey(key)
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
    except (UnicodeDecodeError, ValueError, OverflowError):  # OverflowError: hex beyond float
        return None
    if not math.isfinite(value):
        return None
    return int(value) if value.is_integer() else value


def _long_size_hint(src):
    if isinstance(src, _BinarySource) and src.long_size == 8:
        return " (if the file was written with 4-byte longs, read it with long_size=4)"
    return ""


def loads_t7(data, long_size=8, name="<bytes>"):
    """Read one Torch7 object from bytes (the mapping is in :mod:`torchrnn_py.t7`'s docstring)."""
    _check_long_size(long_size)
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise TypeError(f"loads_t7 expects bytes, not {type(data).__name__}")
    source = _open_source(data, name, long_size)
    try:
        return _Reader(source).read_root()
    except MemoryError:  # sizes are checked against the file, but the file may be too big here
        raise TorchRNNError(f"{name}: not enough memory to read this Torch7 file") from None


def read_t7(source, long_size=8):
    """Read a Torch7 file from a path, a binary file object, or bytes.

    A missing or unreadable path raises TorchRNNError; a malformed file T7FormatError.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return loads_t7(source, long_size)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        return loads_t7(read_input_bytes(path, "Torch7 file"), long_size, name=path)
    data = source.read()
    if not isinstance(data, bytes):
        raise TypeError("read_t7 needs a file opened in binary mode")
    return loads_t7(data, long_size, name=str(getattr(source, "name", "<stream>")))
