"""The Torch7 value types and type tables: type tags, the classes a ``.t7`` value maps to in
Python (:class:`TorchObject`, :class:`Storage`, :class:`LuaFunction`), and the tensor and
storage class names with their dtypes (the mapping is in the package docstring of
:mod:`torchrnn_py.t7`; docs/compatibility.md, "t7 format")."""
import dataclasses

import numpy as np
import torch

from ..errors import TorchRNNError

TYPE_NIL = 0
TYPE_NUMBER = 1
TYPE_STRING = 2
TYPE_TABLE = 3
TYPE_TORCH = 4
TYPE_BOOLEAN = 5
TYPE_FUNCTION = 6
TYPE_LEGACY_RECUR_FUNCTION = 7
TYPE_RECUR_FUNCTION = 8

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


class TableKey:
    """A Lua table used as a table key (nngraph's ``mapindex[parent.data]``), hashed by identity.

    Python dicts cannot be keys, so the reader wraps them: ``table[TableKey(t)]`` finds the entry
    keyed by the very table ``t`` (``.table``), as Lua would; equal contents do not match.
    """
    __slots__ = ("table",)

    def __init__(self, table):
        self.table = table

    def __hash__(self):
        return id(self.table)

    def __eq__(self, other):
        return isinstance(other, TableKey) and other.table is self.table

    def __repr__(self):
        return f"<TableKey of a table of {len(self.table)} entries>"


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


def _check_long_size(long_size):
    if long_size not in (4, 8):
        raise ValueError(f"long_size must be 4 or 8, not {long_size!r}")
