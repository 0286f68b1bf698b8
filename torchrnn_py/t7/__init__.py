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
                              A table used as a key (nngraph's ``mapindex``) becomes a
                              :class:`TableKey` wrapping that dict, equal only to itself.
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
The compatibility contract is docs/compatibility.md, section "t7 format".

Modules: :mod:`.objects` (type tags, the Python value types, class names and dtypes),
:mod:`.sources` (binary and ASCII byte sources, format detection), :mod:`.read` (the reader),
:mod:`.write` (the writer). Their public names (and the byte sources the fuzz tests
record through) are re-exported here, so ``from torchrnn_py.t7 import ...`` is the way in.
"""
from .objects import (TYPE_BOOLEAN, TYPE_FUNCTION, TYPE_LEGACY_RECUR_FUNCTION, TYPE_NIL,
                      TYPE_NUMBER, TYPE_RECUR_FUNCTION, TYPE_STRING, TYPE_TABLE, TYPE_TORCH,
                      LuaFunction, Storage, T7FormatError, TableKey, TorchObject,
                      tensor_class_name)
from .read import MAX_DEPTH, MAX_DIMS, MAX_OVERLAPPING_VIEW_ELEMENTS, loads_t7, read_t7
from .sources import _AsciiSource, _BinarySource
from .write import dumps_t7, write_t7

__all__ = [
    "T7FormatError", "TorchObject", "Storage", "LuaFunction", "TableKey",
    "read_t7", "loads_t7", "write_t7", "dumps_t7", "tensor_class_name",
]
