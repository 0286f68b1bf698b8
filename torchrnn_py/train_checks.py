"""train.lua's options and the checks made before a run trains or writes anything.

The flag table (``OPTIONS``) with the checks of its values, the options of a resumed run,
the iteration a run continues from, and the outputs it may not overwrite (see
torchrnn_py/train/__init__.py, which re-exports the table).
"""
import math
import os

import torch

from .cmdline import options_class, resolve_keyword_options
from .device import PRECISION_HELP, physical_memory  # noqa: F401 (re-exported)
from .errors import TorchRNNError
from .fileio import check_distinct, check_output_path
from .model import MODEL_TYPES

# (name, default, help): train.lua's flags in train.lua's order, then ours.
OPTIONS = [
    ("input_h5", "data/tiny-shakespeare.h5", "HDF5 file written by preprocess"),
    ("input_json", "data/tiny-shakespeare.json", "JSON vocabulary written by preprocess"),
    ("batch_size", 50, "number of parallel streams per minibatch"),
    ("seq_length", 50, "time steps per minibatch (truncated backpropagation length)"),
    ("init_from", "", "start from the model in this checkpoint (.t7)"),
    ("reset_iterations", 1, "with -init_from: 0 continues counting from the checkpoint's i"),
    ("model_type", "lstm", "lstm, rnn or gru (new: char-rnn's GRU)"),
    ("wordvec_size", 64, "embedding size"),
    ("rnn_size", 128, "hidden units per recurrent layer"),
    ("num_layers", 2, "number of recurrent layers"),
    ("dropout", 0, "dropout after every recurrent layer (0 = none)"),
    ("batchnorm", 0, "1 = batch normalisation after every recurrent layer"),
    ("max_epochs", 50, "number of passes over the training data"),
    ("learning_rate", 2e-3, "Adam learning rate"),
    ("grad_clip", 5, "clamp every gradient element to [-grad_clip, grad_clip] (0 = off)"),
    ("lr_decay_every", 5, "multiply the learning rate by lr_decay_factor every this many epochs"),
    ("lr_decay_factor", 0.5, "learning-rate decay factor"),
    ("print_every", 1, "print the loss every this many iterations (0 = never)"),
    ("checkpoint_every", 1000, "validate and write a checkpoint every this many iterations"),
    ("checkpoint_name", "cv/checkpoint", "checkpoint files are <name>_<i>.t7 and .json"),
    ("speed_benchmark", 0, "1 = time every forward/backward pass"),
    ("memory_benchmark", 0, "1 = record GPU memory use (CUDA only)"),
    ("gpu", 0, "CUDA device number; -1 = CPU"),
    ("gpu_backend", "cuda", "cuda (opencl is not available: falls back to the CPU)"),
    ("seed", -1, "new: seed Torch7's generator as torch.manualSeed(seed) would (-1 = from the OS)"),
    ("resume_from", "", "new: continue a run exactly from a checkpoint written by this train"),
    ("log_csv", "", "new: write one CSV row per iteration (i, epoch, loss, lr, seconds, val)"),
    ("precision", "fp32", PRECISION_HELP),
]
DEFAULTS = {name: default for name, default, _ in OPTIONS}
#: The options of a run, typed: ``opt.rnn_size``; ``opt.as_dict()`` is the saved ``opt``.
TrainOptions = options_class("TrainOptions", OPTIONS)


# Options that must be whole numbers of at least 1; every other numeric option must at
# least be a finite number (NaN passes every `x < 1` test, infinity most).
POSITIVE_INTEGERS = ("batch_size", "seq_length", "wordvec_size", "rnn_size", "num_layers")
# Options that name files this run writes: a resumed run takes them from its own command
# line (or the defaults), never from the checkpoint it resumes.
OUTPUT_OPTIONS = ("checkpoint_name", "log_csv", "init_from", "resume_from")
FLOAT32_MAX = float(torch.finfo(torch.float32).max)     # the weights' and the steps' type
MAX_SIZE = 2 ** 31 - 1                  # bound of the sizes above (tensor dimensions)


def option_problem(name, value):
    """What is wrong with ``value`` for option ``name`` (type, finiteness, range), or None."""
    default = DEFAULTS[name]
    if isinstance(default, str):
        return None if isinstance(value, str) else f"must be a string, got {value!r}"
    if not isinstance(value, (int, float)):
        return f"must be a number, got {value!r}"
    if not math.isfinite(value):
        return f"must be a finite number, got {value}"
    if name in POSITIVE_INTEGERS and (value < 1 or int(value) != value):
        return f"must be a positive integer, got {value}"
    if name in POSITIVE_INTEGERS and value > MAX_SIZE:
        return f"must be at most {MAX_SIZE}, got {value:g}"
    if name == "grad_clip" and value > FLOAT32_MAX:
        return f"must be at most {FLOAT32_MAX:.7g} (a float32; 0 = off), got {value}"
    if name == "dropout" and not 0 <= value < 1:
        return f"must be at least 0 and below 1, got {value}"
    if name == "max_epochs" and value < 0:
        return f"must be a number >= 0, got {value}"
    if name == "learning_rate" and not 0 < value <= FLOAT32_MAX:
        return f"must be positive and at most {FLOAT32_MAX:.7g} (a float32), got {value}"
    return None


def resolve_options(options):
    """Fill defaults and check values; returns the :class:`TrainOptions` train.lua's
    ``opt`` would hold."""
    opt = TrainOptions(**resolve_keyword_options(options, DEFAULTS))
    for name in DEFAULTS:                           # in OPTIONS order: the first one is named
        problem = option_problem(name, getattr(opt, name))
        if problem:
            raise TorchRNNError(f"-{name} {problem}")
    if opt.model_type not in MODEL_TYPES:
        raise TorchRNNError(f"-model_type must be lstm, rnn or gru, got {opt.model_type!r}")
    if opt.resume_from and opt.init_from:
        raise TorchRNNError("give either -init_from or -resume_from, not both")
    if opt.gpu_backend not in ("cuda", "opencl"):
        raise TorchRNNError(f"-gpu_backend must be cuda or opencl, got {opt.gpu_backend!r}")
    if opt.precision == "fp16":
        raise TorchRNNError("-precision fp16 is for sampling and evaluation (training would "
                            "need loss scaling); train with bf16 or tf32")
    return opt


def resumed_options(checkpoint, source, options):
    """The options of a resumed run: the checkpoint's, checked, overridden by those given
    now. The files this run writes (OUTPUT_OPTIONS) never come from the checkpoint; the
    batch shape and the architecture (MODEL_OPTIONS) cannot change, and the architecture
    is the stored model's: a saved ``opt`` that says otherwise is refused as damaged, a
    missing one is taken from the model."""
    if checkpoint.resume is None:
        raise TorchRNNError(f"{source}: has no resume state (it was not written by "
                            f"torchrnn_py's train); use -init_from to start from its model")
    saved = checkpoint.opt
    merged = {k: v for k, v in (saved if isinstance(saved, dict) else {}).items()
              if k in DEFAULTS and k not in OUTPUT_OPTIONS}
    for name, value in merged.items():
        problem = option_problem(name, value)
        if problem:
            raise TorchRNNError(f"{source}: cannot resume: its opt.{name} {problem}")
    model = model_options(checkpoint.model)
    for name, value in model.items():
        if name in merged and not _same_model_option(name, merged[name], value):
            raise TorchRNNError(f"{source}: cannot resume: its opt.{name} is "
                                f"{merged[name]!r}, but the model stored in it has {name} "
                                f"{value!r}")
    merged = dict(model, **merged)
    for name in ("batch_size", "seq_length") + tuple(model):
        if name in options and name in merged and \
                not _same_model_option(name, options[name], merged[name]):
            raise TorchRNNError(f"-{name} cannot change when resuming ({merged[name]} in "
                                f"{source}, {options[name]} given)")
    merged.update(options)
    merged["init_from"] = ""
    return merged


def model_options(model):
    """The options that built ``model`` (a LanguageModel), as its checkpoint's opt has them."""
    return {"model_type": model.model_type, "wordvec_size": model.wordvec_dim,
            "rnn_size": model.rnn_size, "num_layers": model.num_layers,
            "dropout": model.dropout, "batchnorm": model.batchnorm}


def _same_model_option(name, a, b):
    """Whether option values ``a`` and ``b`` build the same model (LanguageModel.lua only
    tests batchnorm == 1)."""
    if name == "batchnorm":
        return (a == 1) == (b == 1)
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    return a == b


def start_iteration(opt, checkpoint):
    """The iteration the loop continues from: the checkpoint's ``i`` when resuming (or
    with ``-reset_iterations 0``), else 0. Refuses an ``i`` that is not a count."""
    if checkpoint is None or (opt.init_from and opt.reset_iterations != 0):
        return 0
    source = opt.resume_from or opt.init_from
    i = 0 if opt.init_from and checkpoint.i is None else checkpoint.i
    if isinstance(i, bool) or not isinstance(i, (int, float)) or not math.isfinite(i) \
            or i < 0 or int(i) != i:
        raise TorchRNNError(f"{source}: its iteration count i should be a whole number >= 0, "
                            f"found {i!r}")
    return int(i)


def nothing_to_do(opt, start_i, num_iterations, num_train):
    """The warning of a run whose -max_epochs leaves no iteration to train."""
    if start_i == 0:
        return (f"-max_epochs {opt.max_epochs} is less than one iteration (an epoch is "
                f"{num_train} iterations): nothing was trained and nothing written")
    return (f"the checkpoint is at iteration {start_i} and -max_epochs {opt.max_epochs} "
            f"ends at iteration {num_iterations}: nothing was trained and nothing written")


def checkpoint_number(opt, path):
    """The iteration i if ``path`` is one of this run's checkpoint files
    (<checkpoint_name>_<i>.t7 or .json), else None."""
    prefix = os.path.realpath(opt.checkpoint_name) + "_"
    target = os.path.realpath(path)
    if not target.startswith(prefix):
        return None
    number, dot, ext = target[len(prefix):].partition(".")
    return int(number) if dot and ext in ("t7", "json") and number.isdigit() else None


def check_outputs(opt, start_i, num_iterations):
    """Before anything is written: no output (the CSV log, a checkpoint this run writes)
    may be one of the inputs, and the CSV log may not be one of the checkpoints."""
    inputs = {"input_h5": opt.input_h5, "input_json": opt.input_json,
              "init_from_checkpoint": opt.init_from,
              "resume_from_checkpoint": opt.resume_from}
    for name, path in inputs.items():
        if path and opt.log_csv:
            check_distinct(**{name: path, "CSV_log": opt.log_csv})
    for name, path in dict(inputs, CSV_log=opt.log_csv).items():
        number = checkpoint_number(opt, path) if path else None
        if number is not None and start_i < number <= num_iterations:
            raise TorchRNNError(f"{path}: a checkpoint of this run (-checkpoint_name "
                                f"{opt.checkpoint_name}) would overwrite the "
                                f"{name.replace('_', ' ')}; choose another name")


def check_finite_weights(model, i):
    """Never write a checkpoint of a model whose weights are NaN or infinite."""
    for name, param in model.named_parameters():
        if not bool(torch.isfinite(param).all()):
            raise TorchRNNError(f"the model's weights became non-finite ({name}) at iteration "
                                f"{i}: training diverged and stopped (no checkpoint of it "
                                f"was written); try a lower -learning_rate or -grad_clip")



def check_checkpoint_dir(opt):
    """Fail before training, not hours later, if checkpoints cannot be written."""
    path = "%s_%d.t7" % (opt.checkpoint_name, 0)
    check_output_path(path, "checkpoint", create_dir=True)


def model_parameter_count(model_type, vocab_size, wordvec_size, rnn_size, num_layers,
                          batchnorm=0):
    """The number of parameters LanguageModel would have (without building it)."""
    V, D, H, L = vocab_size, wordvec_size, rnn_size, num_layers
    G = {"lstm": 4 * H, "gru": 3 * H}.get(model_type, H)
    layers = (D + H) * G + G + (L - 1) * (2 * H * G + G)
    return V * D + layers + (2 * H * L if batchnorm == 1 else 0) + H * V + V


def memory_message(sizes, params, needed=None, memory=None):
    size = (f"-model_type {sizes['model_type']} -num_layers {sizes['num_layers']} -rnn_size "
            f"{sizes['rnn_size']} -wordvec_size {sizes['wordvec_size']}: {params:,} parameters")
    if needed is None:
        return f"not enough memory for the model asked for ({size})"
    return (f"the model asked for is too large for this machine ({size}, about "
            f"{needed / 2 ** 30:,.1f} GiB to train, {memory / 2 ** 30:,.1f} GiB of memory)")


def memory_error(err, opt, model, params=None):
    """A TorchRNNError for an allocation failure; other RuntimeErrors are re-raised."""
    text = str(err).lower()
    if not isinstance(err, MemoryError) and "alloc" not in text and "out of memory" not in text:
        raise err
    sizes = opt
    if model is not None:
        params = sum(p.numel() for p in model.parameters())
        sizes = {"model_type": model.model_type, "num_layers": model.num_layers,
                 "rnn_size": model.rnn_size, "wordvec_size": model.wordvec_dim}
    return TorchRNNError(memory_message(sizes, params))
