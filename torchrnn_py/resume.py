"""What an exact resume needs beyond what train.lua saves, kept inside the ``.t7``.

train.lua's checkpoints hold the model, the options, the iteration and the histories; that
is all ``-init_from`` uses. ``-resume_from`` also restores the Adam moments and step counts,
the current learning rate, the data cursors, the recurrent states and the random number
generators, so that a resumed run produces the same losses as one never interrupted. This
lives under one extra top-level key, which the original programs ignore, as plain Lua data
(tables, numbers, Float/Long/Byte tensors) like the rest of the file.
"""
import numpy as np
import torch

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
    generator states, elapsed seconds). Raises TorchRNNError if it does not fit."""
    try:
        return _restore(resume, source, model, optimizer, loader, generator)
    except (KeyError, AttributeError, TypeError, ValueError, IndexError) as err:
        raise TorchRNNError(f"{source}: cannot resume: malformed resume state ({err!r})") from None


def _restore(resume, source, model, optimizer, loader, generator):
    def fail(message):
        raise TorchRNNError(f"{source}: cannot resume: {message}")

    if not isinstance(resume, dict) or resume.get("version") != VERSION:
        fail("its resume state is missing or from another version")
    params = list(model.parameters())
    moments = _as_list(resume["adam"])
    if len(moments) != len(params):
        fail(f"the optimiser state has {len(moments)} entries for {len(params)} parameters")
    optimizer.state.clear()
    for p, saved in zip(params, moments):
        if saved:
            m, v = saved["m"], saved["v"]
            if not (isinstance(m, torch.Tensor) and isinstance(v, torch.Tensor)
                    and m.shape == p.shape and v.shape == p.shape):
                fail("the optimiser moments do not match the model's parameters")
            optimizer.state[p] = {"step": int(saved["step"]), "m": m.to(p), "v": v.to(p)}
    loader.load_state_dict({k: int(v) for k, v in resume["data_cursor"].items()})
    gen = resume["torch7_generator"]
    cache = gen.get("normal_cache")
    generator.set_state({"seed": generator.initial_seed,
                         "key": gen["key"].numpy().astype(np.uint32),
                         "pos": int(gen["pos"]),
                         "normal_cache": None if cache is None else _as_list(cache)})
    states = []
    for saved in _as_list(resume["rnn_states"]):
        states.append(tuple(saved[k] for k in "hc" if k in saved) if saved else None)
    if len(states) != len(model.rnns):
        fail("the saved recurrent states do not match the model's layers")
    natives = _as_list(resume.get("dropout_generators"))
    return float(resume["learning_rate"]), states, natives, float(resume.get("elapsed", 0.0))


def _cpu(tensor):
    return tensor.detach().to("cpu", torch.float32).clone()


def _as_list(value):
    """A Lua array read back (a dict with keys 1..n) or a list, as a list."""
    if isinstance(value, dict):
        return [value[k] for k in sorted(value)]
    return list(value or [])
