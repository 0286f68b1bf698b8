"""What an exact resume needs beyond what train.lua saves, kept inside the ``.t7``.

train.lua's checkpoints hold the model, the options, the iteration and the histories; that
is all ``-init_from`` uses. ``-resume_from`` also restores the Adam moments and step counts,
the current learning rate, the data cursors, the recurrent states and the random number
generators, so that a resumed run produces the same losses as one never interrupted. It is
stored as plain Lua data (tables, numbers, Float/Long/Byte tensors) like the rest of the
file, under one top-level field the original programs ignore (see schema.py).
"""
import dataclasses
import math

import numpy as np
import torch

from ..errors import TorchRNNError
from ..t7 import tensor_class_name
from .torch7_graph import cpu_float, describe

VERSION = 1
#: The largest learning rate: TorchAdam's steps are float32 (train_checks.FLOAT32_MAX).
FLOAT32_MAX = float(torch.finfo(torch.float32).max)
MT_WORDS = 624                       # the words of a Mersenne Twister (MT19937) state
MT_WORD_MAX = 2 ** 32 - 1


@dataclasses.dataclass
class Restored:
    """A resume state checked against the run it continues: what train puts back."""
    learning_rate: float
    layer_states: list       # per layer: (h[, c]) each (N, H) for the whole batch, or None
    native_states: list      # every process's PyTorch dropout generator state (ByteTensors)
    elapsed: float           # seconds trained before


@dataclasses.dataclass
class ResumeState:
    """The resume table as stored (``table``); built by :meth:`capture`, checked and put
    back by :meth:`restore` (a file's table is only checked when a run resumes from it,
    so ``-init_from`` still takes the model of a checkpoint whose resume state is bad)."""
    table: object

    @classmethod
    def capture(cls, model, optimizer, loader, learning_rate, generator, native_states,
                layer_states, elapsed):
        """``native_states``: every process's dropout generator state (PyTorch's, or None
        when seeded runs use ``generator``); ``layer_states``: the full (all processes')
        remembered state of each recurrent layer, or None."""
        moments = []
        for p in model.parameters():
            state = optimizer.state.get(p)
            moments.append({"step": state["step"], "m": cpu_float(state["m"]),
                            "v": cpu_float(state["v"])} if state else {})
        gen_state = generator.get_state()
        return cls({
            "version": VERSION,
            "learning_rate": learning_rate,
            "adam": moments,
            "data_cursor": dict(loader.state_dict()),
            "torch7_generator": {
                "key": torch.from_numpy(gen_state["key"].astype(np.int64)),
                "pos": gen_state["pos"],
                "normal_cache": gen_state["normal_cache"],
            },
            "dropout_generators": [torch.as_tensor(s) for s in native_states if s is not None],
            "rnn_states": [{} if s is None else {k: cpu_float(t) for k, t in zip("hc", s)}
                           for s in (layer_states or [None] * len(model.rnns))],
            "elapsed": elapsed,
        })

    def restore(self, source, model, optimizer, loader, generator):
        """Put the Adam state, the data cursors and Torch7's generator back; returns the
        rest as :class:`Restored`. Every field is checked (type, finiteness, shape against
        the model and the batch): what does not fit is one TorchRNNError naming ``source``."""
        def fail(message):
            raise TorchRNNError(f"{source}: cannot resume: {message}")

        resume = self.table
        if not isinstance(resume, dict):
            fail(f"its resume state should be a table, found {describe(resume)}")
        version = resume.get("version")
        if not _is_number(version) or version != VERSION:
            fail(f"its resume state should be version {VERSION}, found version {version!r}")
        learning_rate = resume.get("learning_rate")
        if not _is_number(learning_rate) or not 0 < learning_rate <= FLOAT32_MAX:
            fail(f"its learning rate should be positive and at most {FLOAT32_MAX:.7g} "
                 f"(a float32, as for -learning_rate), found {learning_rate!r}")
        elapsed = resume.get("elapsed", 0.0)
        if not _is_number(elapsed) or elapsed < 0:
            fail(f"its elapsed time should be a number >= 0, found {elapsed!r}")
        _restore_adam(_field(resume, "adam", fail), model, optimizer, fail)
        loader.load_state_dict(_data_cursor(_field(resume, "data_cursor", fail),
                                            loader.split_sizes, fail))
        _restore_generator(_field(resume, "torch7_generator", fail), generator, fail)
        states = _saved_states(_field(resume, "rnn_states", fail), model,
                               loader.batch_sizes["train"], fail)
        natives = _as_list(resume.get("dropout_generators"), "its dropout generators", fail)
        if not all(isinstance(t, torch.Tensor) and t.dtype == torch.uint8 for t in natives):
            fail("its dropout generator states should be ByteTensors")
        return Restored(float(learning_rate), states, natives, float(elapsed))


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def _field(table, key, fail):
    """``table[key]`` of a resume table, or one line saying it is missing."""
    if not isinstance(table, dict) or key not in table:
        fail(f"its resume state has no {key}")
    return table[key]


def _count(value, what, fail, low=0, high=None):
    """``value`` as an int, if it is a whole number in [low, high]."""
    if not _is_number(value) or int(value) != value or value < low \
            or (high is not None and value > high):
        wanted = f">= {low}" if high is None else f"in {low}..{high}"
        fail(f"{what} should be a whole number {wanted}, found {value!r}")
    return int(value)


def _kind(value):
    """What a value is, for messages: its Torch7 tensor class and shape, or its type."""
    if not isinstance(value, torch.Tensor):
        return describe(value)
    try:
        name = tensor_class_name(value)
    except TypeError:                   # a dtype Torch7 has no tensor for (built in memory)
        name = f"tensor of {value.dtype}"
    return f"a {name} of shape {tuple(value.shape)}"


def _tensor(value, shape, dtype, what, fail):
    """``value`` if it is a finite floating-point tensor of ``shape``, converted to
    ``dtype`` (the model's: a DoubleTensor or HalfTensor is taken at float32), as a tensor
    of its own (a .t7 may store strides of 0 or views sharing memory; this one is updated
    in place)."""
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        fail(f"{what} should be a float tensor, found {_kind(value)}")
    if tuple(value.shape) != tuple(shape):
        fail(f"{what} has shape {tuple(value.shape)}, the model and batch need {tuple(shape)}")
    if not bool(torch.isfinite(value).all()):
        fail(f"{what} holds NaN or infinite values")
    own = torch.empty(tuple(shape), dtype=dtype).copy_(value)      # contiguous, its own
    if not bool(torch.isfinite(own).all()):
        fail(f"{what} holds values beyond the range of the model's "
             f"{str(dtype).replace('torch.', '')} (largest "
             f"{value.abs().max().item():g}, the most it holds {torch.finfo(dtype).max:g})")
    return own


def _data_cursor(cursor, split_sizes, fail):
    """``{split: batch index}`` of every split of the data, each inside its split."""
    if not isinstance(cursor, dict):
        fail(f"its data cursor should be a table, found {describe(cursor)}")
    unknown = sorted(str(k) for k in cursor if k not in split_sizes)
    if unknown:
        fail(f"its data cursor has a split {unknown[0]!r}; the data's splits are "
             f"{', '.join(split_sizes)}")
    missing = [name for name in split_sizes if name not in cursor]
    if missing:
        fail(f"its data cursor has no cursor for {missing[0]} (one is needed for each of "
             f"{', '.join(split_sizes)})")
    return {name: _count(cursor[name], f"data cursor {name} ({size} batches)", fail,
                         0, size - 1)
            for name, size in split_sizes.items()}


def _generator_key(key, fail):
    """A saved Mersenne Twister key as 624 uint32 words, if it is one: a LongTensor of 624
    words in 0..2^32-1 whose 19937 bits of state are not all zero (a state MT19937 never
    reaches: it would only ever draw 0)."""
    if not isinstance(key, torch.Tensor) or key.dtype != torch.int64 \
            or tuple(key.shape) != (MT_WORDS,):
        fail(f"its generator key should be a LongTensor of {MT_WORDS} words, found "
             f"{_kind(key)}")
    words = key.numpy()
    bad = words[(words < 0) | (words > MT_WORD_MAX)]
    if bad.size:
        fail(f"its generator key should hold words in 0..{MT_WORD_MAX}, found {bad[0]}")
    if not words[0] >> 31 and not words[1:].any():     # only word 1's top bit is state
        fail("its generator key is all zero (not a state of the Mersenne Twister)")
    return words.astype(np.uint32)


def _restore_generator(gen, generator, fail):
    """Torch7's generator (Mersenne Twister key, position, cached normal) as saved."""
    key = _generator_key(_field(gen, "key", fail), fail)
    cache = None if gen.get("normal_cache") is None else _as_list(
        gen["normal_cache"], "its generator's normal cache", fail)
    if cache is not None and (len(cache) != 2 or not all(_is_number(v) for v in cache)):
        fail(f"its generator's normal cache should be two numbers, found {cache!r}")
    generator.set_state({"seed": generator.initial_seed,
                         "key": key,
                         "pos": _count(_field(gen, "pos", fail), "the generator position",
                                       fail, 0, 624),
                         "normal_cache": cache})


def _restore_adam(saved_moments, model, optimizer, fail):
    """The Adam moments and step counts, one entry per parameter (empty = no step yet)."""
    params = list(model.parameters())
    moments = _as_list(saved_moments, "its optimiser state", fail)
    if len(moments) != len(params):
        fail(f"the optimiser state has {len(moments)} entries for {len(params)} parameters")
    optimizer.state.clear()
    for k, (p, saved) in enumerate(zip(params, moments), start=1):
        if not isinstance(saved, dict):
            fail(f"optimiser entry {k} should be a table, found {describe(saved)}")
        if saved:
            m = _tensor(_field(saved, "m", fail), p.shape, p.dtype,
                        f"optimiser moment m of parameter {k}", fail)
            v = _tensor(_field(saved, "v", fail), p.shape, p.dtype,
                        f"optimiser moment v of parameter {k}", fail)
            if bool((v < 0).any()):
                fail(f"optimiser moment v of parameter {k} holds negative values (a mean "
                     f"of squared gradients is >= 0), found {v.min().item():g}")
            step = _count(_field(saved, "step", fail),
                          f"optimiser step count of parameter {k}", fail, 1)
            optimizer.state[p] = {"step": step, "m": m.to(p), "v": v.to(p)}


def _saved_states(saved_layers, model, batch_rows, fail):
    """The remembered (h[, c]) of each layer, each (N, H) for the training batch, or None."""
    saved_layers = _as_list(saved_layers, "its recurrent states", fail)
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
        if sorted(map(str, saved)) != sorted(names):
            fail(f"the saved state of layer {layer} should hold {' and '.join(names)}, "
                 f"found {', '.join(sorted(map(str, saved))) or 'nothing'}")
        dtype = next(rnn.parameters()).dtype
        states.append(tuple(_tensor(saved[k], (batch_rows, rnn.hidden_dim), dtype,
                                    f"the saved state {k} of layer {layer}", fail)
                            for k in names))
    return states


def _as_list(value, what, fail):
    """A Lua array read back (a table with keys 1..n) or a list, as a list; None -> []."""
    if value is None:
        return []
    if isinstance(value, dict):
        if set(value) != set(range(1, len(value) + 1)):
            fail(f"{what} should be a list")
        return [value[k] for k in range(1, len(value) + 1)]
    if not isinstance(value, list):
        fail(f"{what} should be a list, found {describe(value)}")
    return list(value)
