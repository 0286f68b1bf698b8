"""A checkpoint's ``.json`` twin, written the way lua-cjson writes it and read back.

``%.14g`` numbers (:func:`lua_number`, also how Lua's ``print`` shows them), ``\\/``, ``{}``
for an empty list; :func:`read_checkpoint_json` accepts both ``{}`` and ``[]``.
"""
import math

from ..cmdline import lua_number          # Lua's number format: its print and lua-cjson's
from ..errors import TorchRNNError
from ..fileio import parse_json, read_input_bytes

#: The loss histories train.lua keeps, in the order it writes them.
HISTORY_KEYS = ("train_loss_history", "val_loss_history", "val_loss_history_it",
                "forward_backward_times", "memory_usage")

_CJSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f",
                  "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def cjson_dumps(value):
    """Serialise like lua-cjson: no spaces, ``%.14g`` numbers, ``\\/``, ``{}`` for an
    empty list, non-ASCII left as UTF-8. (cjson refuses NaN/inf; we write NaN/Infinity,
    which Python's json reads, rather than lose a checkpoint.)"""
    parts = []
    _cjson(value, parts)
    return "".join(parts)


def _cjson(value, out):
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, (int, float)):
        value = float(value)
        if math.isnan(value):
            out.append("NaN")
        elif math.isinf(value):
            out.append("Infinity" if value > 0 else "-Infinity")
        else:
            out.append(lua_number(value))
    elif isinstance(value, str):
        out.append('"')
        out.append("".join(_CJSON_ESCAPES.get(c) or
                           ("\\u%04x" % ord(c) if ord(c) < 0x20 or c == "\x7f" else c)
                           for c in value))
        out.append('"')
    elif isinstance(value, dict):
        out.append("{")
        for n, (key, item) in enumerate(value.items()):
            if n:
                out.append(",")
            _cjson(str(key), out)
            out.append(":")
            _cjson(item, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("{}")
            return
        out.append("[")
        for n, item in enumerate(value):
            if n:
                out.append(",")
            _cjson(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot write {type(value).__name__} to a checkpoint JSON")


def read_checkpoint_json(path):
    """A checkpoint's JSON as a dict, with ``{}`` read as an empty list where train.lua
    keeps lists.

    The keys train.lua writes are checked where present: ``i`` a non-negative integer,
    ``opt`` an object, the histories lists of numbers (``val_loss_history_it`` of
    integers). Anything malformed (not UTF-8, not JSON, nested too deeply, a key given
    twice, wrong types) is one TorchRNNError naming the file.
    """
    raw = read_input_bytes(path, "checkpoint JSON")
    data = parse_json(raw, lambda kind, reason: (
        f"{path}: not a valid checkpoint JSON "
        f"({'not UTF-8 text: ' if kind == 'utf-8' else ''}{reason})"))

    def fail(message):
        raise TorchRNNError(f"{path}: not a valid checkpoint JSON: {message}")

    def is_number(value):
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    def is_count(value):
        return is_number(value) and math.isfinite(value) and value == int(value) \
            and 0 <= value < 2 ** 63

    if not isinstance(data, dict):
        fail(f"expected a JSON object, found {type(data).__name__}")
    if "i" in data:
        if not is_count(data["i"]):
            fail(f"'i' should be a non-negative integer, found {str(data['i'])[:40]}")
        data["i"] = int(data["i"])
    if "opt" in data and not isinstance(data["opt"], dict):
        fail(f"'opt' should be an object, found {type(data['opt']).__name__}")
    for key in HISTORY_KEYS:
        if key not in data:
            continue
        if data[key] == {}:
            data[key] = []
        values = data[key]
        if not isinstance(values, list):
            fail(f"the loss histories are not lists of numbers: '{key}' is a "
                 f"{type(values).__name__}")
        bad = next((k for k, v in enumerate(values) if not is_number(v)), None)
        if bad is not None:
            fail(f"the loss histories are not lists of numbers: '{key}'[{bad}] is "
                 f"{str(values[bad])[:40]}")
        if key == "val_loss_history_it":
            bad = next((k for k, v in enumerate(values) if not is_count(v)), None)
            if bad is not None:
                fail(f"'{key}'[{bad}] should be an iteration (a whole number), found "
                     f"{values[bad]}")
            data[key] = [int(v) for v in values]
    return data
