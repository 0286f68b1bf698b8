"""The checkpoint as one typed object: its fields, and which file of the pair holds each.

train.lua saves one Lua table to ``<name>_<i>.t7``: ``model`` (an ``nn.LanguageModel``),
``opt``, ``i`` and the loss histories, and the same table without ``model`` to
``<name>_<i>.json`` (docs/compatibility.md, checkpoints). This package adds one field,
the resume state, which goes to the ``.t7`` only. :class:`Checkpoint` is that table; it
also reads and writes as a mapping of the file's field names (``checkpoint["i"]``), as the
dict :func:`load_checkpoint` returned before it existed.
"""
import collections.abc
import dataclasses
import math
import os
from typing import Optional

from ..charrnn import charrnn_from_t7, is_charrnn
from ..errors import TorchRNNError
from ..fileio import atomic_outputs, check_input_file
from ..t7 import Storage, TorchObject, read_t7, write_t7
from .cjson import HISTORY_KEYS, cjson_dumps
from .resume_state import ResumeState
from .torch7_graph import describe, model_from_t7, model_to_t7

#: The field of the resume state in the ``.t7``; the original programs ignore it.
RESUME_FIELD = "torchrnn_py_resume"
#: Fields this package adds start with this; they stay out of the ``.json``, which holds
#: what the original's JSON holds (every field but ``model``).
OWN_PREFIX = "torchrnn_py_"
#: train.lua's fields besides ``model``, in the order train writes them.
TRAIN_FIELDS = HISTORY_KEYS + ("opt", "i")
#: Deepest nesting accepted in a checkpoint's non-model fields (train.lua's are 2 deep).
MAX_FIELD_DEPTH = 100


def json_twin(path):
    """The ``.json`` that train.lua writes beside the checkpoint ``path`` (same name)."""
    return os.path.splitext(path)[0] + ".json"


def in_json(field):
    """Whether a checkpoint field is written to the ``.json`` as well as the ``.t7``."""
    return field != "model" and not field.startswith(OWN_PREFIX)


@dataclasses.dataclass(eq=False)
class Checkpoint(collections.abc.MutableMapping):
    """A torch-rnn checkpoint. Fields a file does not have are None; ``extra`` keeps any
    other top-level field of a file as read; ``order`` the file's order of fields (empty:
    train's order), so that a checkpoint read and saved again keeps its layout."""
    model: object
    opt: Optional[dict] = None
    i: Optional[int] = None
    train_loss_history: Optional[list] = None
    val_loss_history: Optional[list] = None
    val_loss_history_it: Optional[list] = None
    forward_backward_times: Optional[list] = None
    memory_usage: Optional[list] = None
    resume: Optional[ResumeState] = None
    extra: dict = dataclasses.field(default_factory=dict)
    order: tuple = ()

    @classmethod
    def from_table(cls, table):
        """A Checkpoint of a table of the file's field names (``model`` a LanguageModel)."""
        if "model" not in table:
            raise TorchRNNError("a checkpoint needs a 'model'")
        known = {name: table[name] for name in TRAIN_FIELDS if name in table}
        resume = table.get(RESUME_FIELD)
        extra = {k: v for k, v in table.items()
                 if k not in TRAIN_FIELDS and k not in ("model", RESUME_FIELD)}
        return cls(model=table["model"], **known, extra=extra, order=tuple(table),
                   resume=None if RESUME_FIELD not in table else
                   resume if isinstance(resume, ResumeState) else ResumeState(resume))

    # -- the mapping of field names ----------------------------------------------------
    def _present(self):
        """The fields this checkpoint has, in its order."""
        names = [name for name in TRAIN_FIELDS if getattr(self, name) is not None]
        names += [RESUME_FIELD] * (self.resume is not None) + list(self.extra) + ["model"]
        if not self.order:
            return names
        return [k for k in self.order if k in names] + [k for k in names if k not in self.order]

    def __getitem__(self, key):
        if key == "model":
            return self.model
        if key == RESUME_FIELD and self.resume is not None:
            return self.resume.table
        if key in TRAIN_FIELDS and getattr(self, key) is not None:
            return getattr(self, key)
        return self.extra[key]

    def __setitem__(self, key, value):
        if key == "model" or key in TRAIN_FIELDS:
            setattr(self, key, value)
        elif key == RESUME_FIELD:
            self.resume = value if isinstance(value, ResumeState) else ResumeState(value)
        else:
            self.extra[key] = value

    def __delitem__(self, key):
        if key == "model" or key not in self:
            raise KeyError(key)
        if key == RESUME_FIELD:
            self.resume = None
        elif key in TRAIN_FIELDS:
            setattr(self, key, None)
        else:
            del self.extra[key]

    def __iter__(self):
        return iter(self._present())

    def __len__(self):
        return len(self._present())

    # -- the files ---------------------------------------------------------------------
    def save(self, path, json_path="auto"):
        """Write ``path`` (.t7) and, like train.lua, its JSON twin without the model
        (``json_path``: 'auto' = same name with .json, None = no JSON). The two files are
        replaced together, only once both are completely written: a failure (full disk,
        Ctrl-C) keeps the old ones."""
        if json_path == "auto":
            json_path = json_twin(path)
        fields = {k: self[k] for k in self._present() if k != "model"}
        opt = self.opt or {}
        table = dict(fields)
        table["model"] = model_to_t7(self.model, opt.get("batch_size", 1),
                                     opt.get("seq_length", 1))
        with atomic_outputs(create_dir=True) as files:
            if json_path:
                files.open(json_path, "w", "checkpoint JSON", encoding="utf-8").write(
                    cjson_dumps({k: v for k, v in fields.items() if in_json(k)}))
            write_t7(files.open(path, "wb", "Torch7 file"), table)

    def histories(self, source):
        """The loss histories a resumed run continues, checked: lists of finite numbers
        (missing ones are empty), ``val_loss_history_it`` whole numbers >= 1, one for each
        entry of ``val_loss_history``."""
        def fail(message):
            raise TorchRNNError(f"{source}: cannot resume: {message}")

        histories = {}
        for key in HISTORY_KEYS:
            values = self.get(key)
            values = [] if values is None else values
            if not isinstance(values, list):
                fail(f"{key} should be a list of numbers, found {_kind(values)}")
            bad = next((v for v in values if not _is_number(v)), _NONE)
            if bad is not _NONE:
                fail(f"{key} should hold finite numbers, found {bad!r}")
            histories[key] = list(values)
        its = histories["val_loss_history_it"]
        bad = next((v for v in its if int(v) != v or v < 1), _NONE)
        if bad is not _NONE:
            fail(f"val_loss_history_it should hold iteration numbers (whole numbers >= 1), "
                 f"found {bad!r}")
        if len(its) != len(histories["val_loss_history"]):
            fail(f"val_loss_history_it should have one iteration for each of the "
                 f"{len(histories['val_loss_history'])} entries of val_loss_history, found "
                 f"{len(its)}")
        histories["val_loss_history_it"] = [int(v) for v in its]
        return histories


_NONE = object()            # "no bad value found" (None is itself a bad value)


def _kind(value):
    """What a history is instead of a list, for messages (a table with keys other than
    1..n stays a dict when read: not a Lua array)."""
    if isinstance(value, dict):
        return f"a table with keys {sorted(value, key=repr)[:4]!r}"
    if isinstance(value, (bool, int, float, str)):
        return repr(value)[:40]
    return describe(value)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def load_checkpoint(path):
    """Read a torch-rnn ``.t7`` checkpoint: a :class:`Checkpoint` whose ``model`` is a
    LanguageModel (CPU, float32) and ``opt``/histories plain Python values. A char-rnn
    checkpoint is read as the torch-rnn checkpoint it converts to (its model in float32)."""
    check_input_file(path, "checkpoint")
    return checkpoint_from_t7(read_t7(path), path)


def save_checkpoint(path, checkpoint, json_path="auto"):
    """Write ``checkpoint`` (a :class:`Checkpoint`, or a dict with ``model`` and
    train.lua's other fields) as :meth:`Checkpoint.save` does."""
    if not isinstance(checkpoint, Checkpoint):
        checkpoint = Checkpoint.from_table(checkpoint)
    checkpoint.save(path, json_path)


def load_model(path):
    """The LanguageModel of a torch-rnn or char-rnn checkpoint, on the CPU, in evaluation
    mode, in the file's float type (char-rnn's CPU files: double, which it computes in)."""
    check_input_file(path, "checkpoint")
    root = read_t7(path)
    if is_charrnn(root):
        return charrnn_from_t7(root, path).model
    model = checkpoint_from_t7(root, path).model
    model.eval()
    return model


def checkpoint_from_t7(root, path="checkpoint"):
    """:func:`load_checkpoint` for an object graph already read from the ``.t7`` ``path``."""
    if isinstance(root, TorchObject) and root.class_name == "nn.LanguageModel":
        root = {"model": root}                   # torch.save(file, model) on its own
    if is_charrnn(root):
        return Checkpoint.from_table(charrnn_from_t7(root, path).torchrnn_fields())
    if not isinstance(root, dict) or not isinstance(root.get("model"), TorchObject) \
            or root["model"].class_name != "nn.LanguageModel":
        found = describe(root.get("model") if isinstance(root, dict) else root)
        raise TorchRNNError(f"{path}: not a torch-rnn checkpoint: expected a table whose "
                            f"'model' is an nn.LanguageModel, found {found}")
    table = {}
    for key, value in root.items():
        if key == "model":
            table["model"] = model_from_t7(value, path)
        else:
            table[key] = from_lua(value, as_list=key in HISTORY_KEYS,
                                  where=f"{path}: the checkpoint's field {key!r}")
    return Checkpoint.from_table(table)



def from_lua(value, as_list=False, where="the value"):
    """Lua values as plain Python: integral numbers -> int, tables with keys 1..n ->
    lists (and an empty table -> [] where a list is expected), Storages -> lists.

    A table reached twice is converted once and shared; one that contains itself, or
    nesting deeper than ``MAX_FIELD_DEPTH``, is one TorchRNNError naming ``where``."""
    return _from_lua(value, as_list, where, {}, set(), 0)


def _from_lua(value, as_list, where, done, active, depth):
    if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 53:
        return int(value)
    if isinstance(value, Storage):
        return [_from_lua(v, False, where, done, active, depth) for v in value.tolist()]
    if not isinstance(value, dict):
        return value
    key = id(value)
    if key in active:
        raise TorchRNNError(f"{where} contains itself (a cycle of tables); refusing it")
    if key in done:
        return done[key]
    if depth >= MAX_FIELD_DEPTH:
        raise TorchRNNError(f"{where} has tables nested more than {MAX_FIELD_DEPTH} levels "
                            f"deep; refusing it")
    active.add(key)
    n = len(value)
    if (n and set(value) == set(range(1, n + 1))) or (as_list and n == 0):
        result = [_from_lua(value[k], False, where, done, active, depth + 1)
                  for k in range(1, n + 1)]
    else:
        result = {k: _from_lua(v, False, where, done, active, depth + 1)
                  for k, v in value.items()}
    active.discard(key)
    done[key] = result
    return result


