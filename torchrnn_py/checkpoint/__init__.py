"""Checkpoints in torch-rnn's own formats: ``.t7`` (Torch7) and its ``.json`` twin.

- :mod:`.schema`: :class:`Checkpoint`, the one object that knows the fields and which file
  holds each; :func:`load_checkpoint`, :func:`save_checkpoint`, :func:`load_model`;
- :mod:`.resume_state`: :class:`ResumeState`, what ``-resume_from`` continues exactly;
- :mod:`.torch7_graph`: the ``nn.LanguageModel`` object graph <-> LanguageModel;
- :mod:`.cjson`: the ``.json`` as lua-cjson writes it, and read back.
"""
from .cjson import HISTORY_KEYS, cjson_dumps, lua_number, read_checkpoint_json
from .resume_state import ResumeState
from .schema import (MAX_FIELD_DEPTH, RESUME_FIELD, Checkpoint, checkpoint_from_t7,
                     from_lua, json_twin, load_checkpoint, load_model,
                     save_checkpoint)
from .torch7_graph import CLASS_VERSIONS, RNN_CLASSES, model_from_t7, model_to_t7

__all__ = ["CLASS_VERSIONS", "Checkpoint", "HISTORY_KEYS", "MAX_FIELD_DEPTH", "RESUME_FIELD",
           "RNN_CLASSES", "ResumeState", "checkpoint_from_t7", "cjson_dumps", "from_lua",
           "json_twin", "load_checkpoint", "load_model", "lua_number", "model_from_t7", "model_to_t7",
           "read_checkpoint_json", "save_checkpoint"]
