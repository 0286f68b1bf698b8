"""The writer: an object graph as Torch7's ``torch.save`` writes it, binary or ASCII, to bytes
or atomically to a path (docs/compatibility.md, "t7 format")."""
import math
import numbers
import os
import struct

import numpy as np
import torch

from ..fileio import atomic_output
from .objects import (_CLASS_INFO, TYPE_BOOLEAN, TYPE_FUNCTION, TYPE_LEGACY_RECUR_FUNCTION,
                      TYPE_NIL, TYPE_NUMBER, TYPE_RECUR_FUNCTION, TYPE_STRING, TYPE_TABLE,
                      TYPE_TORCH, LuaFunction, Storage, TableKey, TorchObject, _check_long_size,
                      _is_fixed_width, _storage_class_name, tensor_class_name)


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
        yield key.table if isinstance(key, TableKey) else key
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

