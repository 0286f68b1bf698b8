"""What an exact resume needs beyond what train.lua saves, kept inside the ``.t7``.

train.lua's checkpoints hold the model, the options, the iteration and the histories; that
is all ``-init_from`` uses. ``-resume_from`` also restores the Adam moments and step counts,
the current learning rate, the data cursors, the recurrent states and the random number
generators, so that a resumed run produces the same losses as one never interrupted. This
lives under one extra top-level key, which the original programs ignore, as plain Lua data
(tables, numbers, Float/Long/Byte tensors) like the rest of the file.
"""
import math

import numpy as np
import torch

from .checkpoint import HISTORY_KEYS
from .errors import TorchRNNError

RESUME_KEY = "torchrnn_py_resume"
VERSION = 1


def capture(model, optimizer, loader, learning_rate, generator, native_states, layer_states,
            elapsed):
    """The resume table: ``native_states`` is every process's dropout generator state
    (PyTorch's, or None when seeded runs use ``generator``); ``layer_states`` the full
    (all processes') remembered state of each recurrent layer, or None."""
    moments = []
    for p in model.parameters():
        state = optimizer.state.get(p)
        if state:
            moments.append({"step": state["step"], "m": _cpu(state["m"]), "v": _cpu(state["v"])})
        else:
            moments.append({})
    gen_state = generator.get_state()
    return {
        "version": VERSION,
        "learning_rate": learning_rate,
        "adam": moments,
        "data_cursor": {name: idx for name, idx in loader.state_dict().items()},
        "torch7_generator": {
            "key": torch.from_numpy(gen_state["key"].astype(np.int64)),
            "pos": gen_state["pos"],
            "normal_cache": gen_state["normal_cache"],
        },
        "dropout_generators": [torch.as_tensor(s) for s in native_states if s is not None],
        "rnn_states": [{} if s is None else {k: _cpu(t) for k, t in zip("hc", s)}
                       for s in (layer_states or [None] * len(model.rnns))],
        "elapsed": elapsed,
    }


def restore(resume, source, model, optimizer, loader, generator):
    """Put a resume table back; returns (learning_rate, full layer states, native dropout
    generator states, elapsed seconds). Every field is checked (type, finiteness, shape
    against the model and the batch): what does not fit is one TorchRNNError naming
    ``source``."""
    try:
        return _restore(resume, source, model, optimizer, loader, generator)
    except (KeyError, AttributeError, TypeError, ValueError, IndexError) as err:
        raise TorchRNNError(f"{source}: cannot resume: malformed resume state ({err!r})") from None


def saved_histories(checkpoint, source):
    """The loss histories a resumed run continues, checked to be lists of finite numbers."""
    histories = {}
    for key in HISTORY_KEYS:
        values = _as_list(checkpoint.get(key))
        if not all(_is_number(v) for v in values):
            bad = next(v for v in values if not _is_number(v))
            raise TorchRNNError(f"{source}: cannot resume: {key} should hold finite numbers, "
                                f"found {bad!r}")
        histories[key] = [int(v) if key == "val_loss_history_it" else v for v in values]
    return histories


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def _count(value, what, fail, low=0, high=None):
    """``value`` as an int, if it is a whole number in [low, high]."""
    if not _is_number(value) or int(value) != value or value < low \
            or (high is not None and value > high):
        fail(f"{what} should be a whole number >= {low}, found {value!r}")
    return int(value)


def _tensor(value, shape, what, fail):
    """``value`` if it is a finite floating-point tensor of ``shape``."""
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        fail(f"{what} should be a float tensor, found {type(value).__name__}")
    if tuple(value.shape) != tuple(shape):
        fail(f"{what} has shape {tuple(value.shape)}, the model and batch need {tuple(shape)}")
    if not bool(torch.isfinite(value).all()):
        fail(f"{what} holds NaN or infinite values")
    return value


def _restore(resume, source, model, optimizer, loader, generator):
    def fail(message):
        raise TorchRNNError(f"{source}: cannot resume: {message}")

    if not isinstance(resume, dict) or resume.get("version") != VERSION:
        fail("its resume state is missing or from another version")
    learning_rate = resume.get("learning_rate")
    if not _is_number(learning_rate) or learning_rate <= 0:
        fail(f"its learning rate should be a positive number, found {learning_rate!r}")
    elapsed = resume.get("elapsed", 0.0)
    if not _is_number(elapsed) or elapsed < 0:
        fail(f"its elapsed time should be a number >= 0, found {elapsed!r}")
    _restore_adam(resume, model, optimizer, fail)
    cursor = resume["data_cursor"]
    if not isinstance(cursor, dict):
        fail(f"its data cursor should be a table, found {type(cursor).__name__}")
    loader.load_state_dict({k: _count(v, f"data cursor {k}", fail) for k, v in cursor.items()})
    gen = resume["torch7_generator"]
    cache = gen.get("normal_cache")
    cache = None if cache is None else _as_list(cache)
    if cache is not None and (len(cache) != 2 or not all(_is_number(v) for v in cache)):
        fail(f"its generator's normal cache should be two numbers, found {cache!r}")
    key = gen["key"]
    if not isinstance(key, torch.Tensor) or key.dtype.is_floating_point or key.dim() != 1:
        fail("its generator key should be a LongTensor of 624 words")
    generator.set_state({"seed": generator.initial_seed,
                         "key": key.numpy().astype(np.uint32),
                         "pos": _count(gen["pos"], "the generator position", fail, 0, 624),
                         "normal_cache": cache})
    states = _saved_states(resume, model, loader.batch_sizes["train"], fail)
    natives = _as_list(resume.get("dropout_generators"))
    if not all(isinstance(t, torch.Tensor) and t.dtype == torch.uint8 for t in natives):
        fail("its dropout generator states should be ByteTensors")
    return float(learning_rate), states, natives, float(elapsed)


def _restore_adam(resume, model, optimizer, fail):
    """The Adam moments and step counts, one entry per parameter (empty = no step yet)."""
    params = list(model.parameters())
    moments = _as_list(resume["adam"])
    if len(moments) != len(params):
        fail(f"the optimiser state has {len(moments)} entries for {len(params)} parameters")
    optimizer.state.clear()
    for k, (p, saved) in enumerate(zip(params, moments), start=1):
        if not isinstance(saved, dict):
            fail(f"optimiser entry {k} should be a table, found {type(saved).__name__}")
        if saved:
            m = _tensor(saved["m"], p.shape, f"optimiser moment m of parameter {k}", fail)
            v = _tensor(saved["v"], p.shape, f"optimiser moment v of parameter {k}", fail)
            step = _count(saved["step"], f"optimiser step count of parameter {k}", fail, 1)
            optimizer.state[p] = {"step": step, "m": m.to(p), "v": v.to(p)}


def _saved_states(resume, model, batch_rows, fail):
    """The remembered (h[, c]) of each layer, each (N, H) for the training batch, or None."""
    saved_layers = _as_list(resume["rnn_states"])
    if len(saved_layers) != len(model.rnns):
        fail(f"the saved recurrent states are for {len(saved_layers)} layers, the model has "
             f"{len(model.rnns)}")
    states = []
    for layer, (rnn, saved) in enumerate(zip(model.rnns, saved_layers), start=1):
        if not isinstance(saved, dict):
            fail(f"the saved state of layer {layer} should be a table")
        if not saved:
            states.append(None)
            continue
        names = "hc" if rnn.has_cell else "h"
        if sorted(saved) != sorted(names):
            fail(f"the saved state of layer {layer} should hold {' and '.join(names)}, "
                 f"found {', '.join(map(str, sorted(saved, key=str))) or 'nothing'}")
        states.append(tuple(_tensor(saved[k], (batch_rows, rnn.hidden_dim),
                                    f"the saved state {k} of layer {layer}", fail)
                            for k in names))
    return states


def _cpu(tensor):
    return tensor.detach().to("cpu", torch.float32).clone()


def _as_list(value):
    """A Lua array read back (a dict with keys 1..n) or a list, as a list."""
    if isinstance(value, dict):
        return [value[k] for k in sorted(value)]
    return list(value or [])
