"""train.lua: train a LanguageModel on a preprocessed HDF5/JSON dataset.

Same single-dash flags, defaults, printed lines and checkpoint files as torch-rnn's
``th train.lua`` (SPEC §4), plus new flags whose defaults keep the original behaviour:
``-seed N`` (what ``torch.manualSeed(N)`` would have meant to the original).

Library use: ``train(input_h5=..., input_json=..., rnn_size=..., verbose=True)`` takes the
flags as keyword arguments and returns the histories and the trained model.
"""
import contextlib
import math
import os
import signal
import sys
import threading
import time

import torch

from . import checkpoint as ckpt
from . import distributed
from .cmdline import lua_number, make_printers, options_class, resolve_keyword_options
from .criterion import torch7_loss_value
from .data import DataLoader
from .device import PRECISION_HELP, choose_device, use_precision
from .errors import TorchRNNError
from .evaluate import evaluate_split
from .fileio import atomic_output, check_distinct, check_output_path
from .model import MODEL_TYPES, LanguageModel
from .optim import TorchAdam, clamp_gradients_
from .rng import TorchGenerator, os_seed
from .vocab import model_token_map, read_vocab, token_map_message

PROG = "torchrnn-train"

# (name, default, help): train.lua's flags in train.lua's order, then ours.
OPTIONS = [
    ("input_h5", "data/tiny-shakespeare.h5", "HDF5 file written by preprocess"),
    ("input_json", "data/tiny-shakespeare.json", "JSON vocabulary written by preprocess"),
    ("batch_size", 50, "number of parallel streams per minibatch"),
    ("seq_length", 50, "time steps per minibatch (truncated backpropagation length)"),
    ("init_from", "", "start from the model in this checkpoint (.t7)"),
    ("reset_iterations", 1, "with -init_from: 0 continues counting from the checkpoint's i"),
    ("model_type", "lstm", "lstm or rnn"),
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
        raise TorchRNNError(f"-model_type must be lstm or rnn, got {opt.model_type!r}")
    if opt.resume_from and opt.init_from:
        raise TorchRNNError("give either -init_from or -resume_from, not both")
    if opt.gpu_backend not in ("cuda", "opencl"):
        raise TorchRNNError(f"-gpu_backend must be cuda or opencl, got {opt.gpu_backend!r}")
    return opt


def train(*, verbose=False, log=None, warn=None, handle_signals=False, progress=None,
          **options):
    """Train as ``th train.lua`` does; keyword arguments are its flags (see OPTIONS).

    Returns a dict with ``model`` (the trained LanguageModel), ``i`` (the last
    iteration), ``train_loss_history``, ``val_loss_history``, ``val_loss_history_it``,
    ``forward_backward_times``, ``memory_usage`` and ``opt``. ``verbose`` prints
    train.lua's lines on stdout; ``log``/``warn`` receive them instead when given.
    ``handle_signals``: on SIGINT/SIGTERM finish the current iteration, write a checkpoint
    that ``resume_from`` continues exactly, and raise KeyboardInterrupt.
    ``progress``: a callable called after every iteration with one dict: ``i``,
    ``num_iterations``, ``epoch`` (as printed), ``loss``, ``learning_rate``, ``val_loss``
    (None unless it validated), ``checkpoint`` (the .t7 written, or None) and ``seconds``.
    Under ``torchrun`` the processes share each minibatch (see :mod:`distributed`).
    """
    notice = _notice_printer(verbose, warn)
    say, warn = make_printers(verbose, log, warn, PROG)
    resume_source = options.get("resume_from") or ""
    checkpoint = None
    if resume_source:
        checkpoint = ckpt.load_checkpoint(resume_source)
        options = _resumed_options(checkpoint, resume_source, options)
    opt = resolve_options(options)
    context = distributed.setup(use_cuda=opt.gpu >= 0 and opt.gpu_backend == "cuda"
                                and torch.cuda.is_available())
    try:
        if not context.is_main:                     # rank 0 speaks for the whole job
            say = warn = notice = lambda *parts: None                    # noqa: E731
        device = choose_device(opt.as_dict(), say, warn, context)
        if device.type != "cuda":
            opt.memory_benchmark = 0             # as train.lua does outside CUDA
        printers = (say, warn, notice)
        with _interrupt_flag(handle_signals) as interrupted:
            return _train(opt, checkpoint, context, device, printers, interrupted,
                          progress if context.is_main else None)
    finally:
        distributed.teardown(context)


def _notice_printer(verbose, warn):
    """Where the "wrote PATH" lines go: to ``warn`` when given, else stderr when verbose."""
    if warn is not None:
        return warn
    if verbose:
        return lambda msg: print(msg, file=sys.stderr, flush=True)
    return lambda msg: None


def _resumed_options(checkpoint, source, options):
    """The options of a resumed run: the checkpoint's, checked, overridden by those given
    now. The files this run writes (OUTPUT_OPTIONS) never come from the checkpoint."""
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
    for name in ("batch_size", "seq_length"):
        if name in options and name in merged and options[name] != merged[name]:
            raise TorchRNNError(f"-{name} cannot change when resuming ({merged[name]} in "
                                f"{source}, {options[name]} given)")
    merged.update(options)
    merged["init_from"] = ""
    return merged


def _train(opt, checkpoint, context, device, printers, interrupted, progress=None):
    """The loop of train.lua (SPEC §4), for one process of ``context``."""
    say, warn, notice = printers
    vocab = read_vocab(opt.input_json)
    seeded = opt.seed >= 0
    generator = TorchGenerator(opt.seed if seeded else os_seed())
    source = opt.resume_from or opt.init_from
    if opt.init_from:
        checkpoint = ckpt.load_checkpoint(opt.init_from)
    start_i = _start_iteration(opt, checkpoint)
    token_map = None
    if source:
        token_map = model_token_map(vocab, checkpoint.model.vocab, opt.input_json, source)
        if token_map is not None:
            warn(token_map_message(token_map, checkpoint.model.vocab_size))
    loader = DataLoader(opt.input_h5, opt.batch_size, opt.seq_length,
                        vocab_size=len(vocab), log=say, token_map=token_map)
    train_rows = loader.batch_sizes["train"]      # opt's batch size, or less for tiny data
    rows = context.rows(train_rows) if context.active else None
    num_train = loader.split_sizes["train"]
    num_iterations = int(math.floor(opt.max_epochs * num_train))
    _check_outputs(opt, start_i, num_iterations)
    if opt.precision == "fp16":
        raise TorchRNNError("-precision fp16 is for sampling and evaluation (training would "
                            "need loss scaling); train with bf16 or tf32")

    if checkpoint is not None:
        say("Resuming from " if opt.resume_from else "Initializing from ", source)
        model = checkpoint.model
    else:
        model = _new_model(opt, vocab, train_rows, generator)
    try:
        model.to(device)
    except (RuntimeError, MemoryError) as err:
        raise _memory_error(err, opt.as_dict(), model) from None
    use_precision(model, opt.precision, device, warn)
    native = None
    if seeded or device.type == "cpu":
        # Torch7's masks from Torch7's generator, as the original draws them (on the CPU
        # this is also the fastest way: numpy draws them faster than torch.bernoulli_)
        model.set_dropout_generator(generator, rows=_row_share(rows, train_rows))
    else:
        # unseeded on a GPU: PyTorch's own masks, drawn on the device
        native = torch.Generator(device=device)
        native.manual_seed(os_seed() & (2 ** 63 - 1))
        model.set_dropout_generator(native)

    optimizer = TorchAdam(model.parameters(), lr=opt.learning_rate)
    learning_rate = opt.learning_rate
    history = {key: [] for key in ckpt.HISTORY_KEYS}
    elapsed_before = 0.0
    if opt.resume_from:
        history = checkpoint.histories(opt.resume_from)
        learning_rate, elapsed_before = _restore(opt, checkpoint, model, optimizer, loader,
                                                 generator, native, rows, context, device,
                                                 warn)
    if num_iterations <= start_i:
        warn(_nothing_to_do(opt, start_i, num_iterations, num_train))
        return dict(history, opt=opt.as_dict(), i=start_i, model=model)
    _check_checkpoint_dir(opt)                      # every process: fail before training
    memory_base = (_gpu_memory_used(device)
                   if opt.memory_benchmark and device.type == "cuda" else None)
    net = model
    if context.active:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    csv_log = None
    if opt.log_csv and context.is_main:
        csv_log = _CsvLog(opt.log_csv, keep_until=start_i if opt.resume_from else None)
        notice(f"writing CSV log {opt.log_csv}")

    started = time.perf_counter() - elapsed_before
    i = start_i

    def write_checkpoint(at, layer_states):
        _check_finite_weights(model, at)
        natives = distributed.gather_objects(
            context, native.get_state() if native is not None else None)
        if context.is_main:
            state = ckpt.ResumeState.capture(model, optimizer, loader, learning_rate,
                                             generator, natives, layer_states,
                                             time.perf_counter() - started)
            path = "%s_%d.t7" % (opt.checkpoint_name, at)
            ckpt.Checkpoint(model, opt=opt.as_dict(), i=at, resume=state, **history).save(path)
            notice(f"wrote {path}")
            notice(f"wrote {os.path.splitext(path)[0]}.json")
            return path
        return None

    model.train()
    watching = interrupted is not None
    if watching and interrupted():                  # Ctrl-C while setting up: nothing to save
        raise KeyboardInterrupt
    try:
        for i in range(start_i + 1, num_iterations + 1):
            epoch = i // num_train + 1
            if i % num_train == 0:
                model.reset_states()
                if opt.lr_decay_every > 0 and epoch % opt.lr_decay_every == 0:
                    learning_rate *= opt.lr_decay_factor
                    if not abs(learning_rate) <= FLOAT32_MAX:
                        raise TorchRNNError(f"the learning rate became {learning_rate:g} at "
                                            f"iteration {i} (-lr_decay_factor "
                                            f"{opt.lr_decay_factor}): too large to train")
                    optimizer.reset_state()                # quirk: train.lua drops Adam's state
                    for group in optimizer.param_groups:
                        group["lr"] = learning_rate

            loss = _train_step(net, model, optimizer, loader, rows, device, opt, history,
                               memory_base, say, context)
            if not math.isfinite(loss):
                raise TorchRNNError(
                    f"the training loss became {loss} at iteration {i}: training diverged "
                    f"and stopped (no checkpoint of it was written); try a lower "
                    f"-learning_rate (now {learning_rate:g}) or -grad_clip")
            history["train_loss_history"].append(loss)
            if opt.print_every > 0 and i % opt.print_every == 0:
                say("Epoch %.2f / %d, i = %d / %d, loss = %f"
                    % (i / num_train + 1, opt.max_epochs, i, num_iterations, loss))

            val_loss = written = None
            if (opt.checkpoint_every > 0 and i % opt.checkpoint_every == 0) \
                    or i == num_iterations:
                failure = None
                try:
                    if context.is_main:
                        val_loss = evaluate_split(model, loader, "val", device)
                        say("val_loss = ", lua_number(val_loss))
                        history["val_loss_history"].append(val_loss)
                        history["val_loss_history_it"].append(i)
                    model.reset_states()
                    model.train()
                except (TorchRNNError, OSError) as err:
                    failure = err
                _stop_together(context, failure)    # the others wait here (no timeout)
                try:
                    written = write_checkpoint(i, None)
                except (TorchRNNError, OSError) as err:
                    failure = err
                _stop_together(context, failure)
            seconds = time.perf_counter() - started
            if csv_log is not None:
                csv_log.write(i, i / num_train + 1, loss, learning_rate, seconds, val_loss)
            if progress is not None:
                progress({"i": i, "num_iterations": num_iterations, "epoch": i / num_train + 1,
                          "loss": loss, "learning_rate": learning_rate, "val_loss": val_loss,
                          "checkpoint": written, "seconds": seconds})
            if watching and distributed.any_process(context, interrupted()):
                if i == num_iterations:             # finished anyway, final checkpoint written
                    break
                states = [None if state is None else
                          tuple(distributed.gather_rows(context, t) for t in state)
                          for state in model.get_states()]
                path = write_checkpoint(i, states)
                distributed.barrier(context)
                if path:
                    say(f"Interrupted after iteration {i}: wrote {path} "
                        f"(continue with -resume_from {path})")
                raise KeyboardInterrupt
    finally:
        if csv_log is not None:
            csv_log.close()
    return dict(history, opt=opt.as_dict(), i=i, model=model)


def _start_iteration(opt, checkpoint):
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


def _restore(opt, checkpoint, model, optimizer, loader, generator, native, rows, context,
             device, warn):
    """Put back what ``-resume_from`` continues; returns (learning rate, elapsed seconds)."""
    restored = checkpoint.resume.restore(opt.resume_from, model, optimizer, loader,
                                         generator)
    learning_rate, states = restored.learning_rate, restored.layer_states
    natives, elapsed = restored.native_states, restored.elapsed
    for group in optimizer.param_groups:
        group["lr"] = learning_rate
    model.set_states(None if state is None else tuple(
        t[rows].to(device) if rows is not None else t.to(device) for t in state)
        for state in states)
    _restore_native(native, natives, context, model.dropout > 0, warn)
    return learning_rate, elapsed


def _nothing_to_do(opt, start_i, num_iterations, num_train):
    """The warning of a run whose -max_epochs leaves no iteration to train."""
    if start_i == 0:
        return (f"-max_epochs {opt.max_epochs} is less than one iteration (an epoch is "
                f"{num_train} iterations): nothing was trained and nothing written")
    return (f"the checkpoint is at iteration {start_i} and -max_epochs {opt.max_epochs} "
            f"ends at iteration {num_iterations}: nothing was trained and nothing written")


def _checkpoint_number(opt, path):
    """The iteration i if ``path`` is one of this run's checkpoint files
    (<checkpoint_name>_<i>.t7 or .json), else None."""
    prefix = os.path.realpath(opt.checkpoint_name) + "_"
    target = os.path.realpath(path)
    if not target.startswith(prefix):
        return None
    number, dot, ext = target[len(prefix):].partition(".")
    return int(number) if dot and ext in ("t7", "json") and number.isdigit() else None


def _check_outputs(opt, start_i, num_iterations):
    """Before anything is written: no output (the CSV log, a checkpoint this run writes)
    may be one of the inputs, and the CSV log may not be one of the checkpoints."""
    inputs = {"input_h5": opt.input_h5, "input_json": opt.input_json,
              "init_from_checkpoint": opt.init_from,
              "resume_from_checkpoint": opt.resume_from}
    for name, path in inputs.items():
        if path and opt.log_csv:
            check_distinct(**{name: path, "CSV_log": opt.log_csv})
    for name, path in dict(inputs, CSV_log=opt.log_csv).items():
        number = _checkpoint_number(opt, path) if path else None
        if number is not None and start_i < number <= num_iterations:
            raise TorchRNNError(f"{path}: a checkpoint of this run (-checkpoint_name "
                                f"{opt.checkpoint_name}) would overwrite the "
                                f"{name.replace('_', ' ')}; choose another name")


def _check_finite_weights(model, i):
    """Never write a checkpoint of a model whose weights are NaN or infinite."""
    for name, param in model.named_parameters():
        if not bool(torch.isfinite(param).all()):
            raise TorchRNNError(f"the model's weights became non-finite ({name}) at iteration "
                                f"{i}: training diverged and stopped (no checkpoint of it "
                                f"was written); try a lower -learning_rate or -grad_clip")


def model_parameter_count(model_type, vocab_size, wordvec_size, rnn_size, num_layers,
                          batchnorm=0):
    """The number of parameters LanguageModel would have (without building it)."""
    V, D, H, L = vocab_size, wordvec_size, rnn_size, num_layers
    G = 4 * H if model_type == "lstm" else H
    layers = (D + H) * G + G + (L - 1) * (2 * H * G + G)
    return V * D + layers + (2 * H * L if batchnorm == 1 else 0) + H * V + V


def _physical_memory():
    """Bytes of physical memory, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _new_model(opt, vocab, batch_rows, generator):
    """A fresh LanguageModel of opt's size; one line (not an allocator traceback) when it
    cannot fit in this machine's memory."""
    H, L, T = int(opt.rnn_size), int(opt.num_layers), int(opt.seq_length)
    params = model_parameter_count(opt.model_type, len(vocab), int(opt.wordvec_size),
                                   H, L, opt.batchnorm)
    # float32 weights, gradients and two Adam moments, plus the activations of a batch
    needed = 4 * (4 * params + batch_rows * T * (8 * H * L + 3 * len(vocab)))
    memory = _physical_memory()
    if memory is not None and needed > memory:
        raise TorchRNNError(_memory_message(opt.as_dict(), params, needed, memory))
    try:
        return LanguageModel(vocab, opt.model_type, opt.wordvec_size, opt.rnn_size,
                             opt.num_layers, opt.dropout, opt.batchnorm,
                             generator=generator)
    except (RuntimeError, MemoryError) as err:
        raise _memory_error(err, opt.as_dict(), None, params) from None


def _memory_message(sizes, params, needed=None, memory=None):
    size = (f"-model_type {sizes['model_type']} -num_layers {sizes['num_layers']} -rnn_size "
            f"{sizes['rnn_size']} -wordvec_size {sizes['wordvec_size']}: {params:,} parameters")
    if needed is None:
        return f"not enough memory for the model asked for ({size})"
    return (f"the model asked for is too large for this machine ({size}, about "
            f"{needed / 2 ** 30:,.1f} GiB to train, {memory / 2 ** 30:,.1f} GiB of memory)")


def _memory_error(err, opt, model, params=None):
    """A TorchRNNError for an allocation failure; other RuntimeErrors are re-raised."""
    text = str(err).lower()
    if not isinstance(err, MemoryError) and "alloc" not in text and "out of memory" not in text:
        raise err
    sizes = opt
    if model is not None:
        params = sum(p.numel() for p in model.parameters())
        sizes = {"model_type": model.model_type, "num_layers": model.num_layers,
                 "rnn_size": model.rnn_size, "wordvec_size": model.wordvec_dim}
    return TorchRNNError(_memory_message(sizes, params))


def _restore_native(native, natives, context, dropout, warn):
    """Continue the on-device dropout masks of an unseeded GPU run, or say in one line why
    they restart (saved on the CPU, by another number of processes, or not needed now)."""
    saved = natives[context.rank] if len(natives) == context.world_size else None
    if native is not None and saved is not None:
        try:
            native.set_state(saved)
            return
        except RuntimeError:      # saved on another kind of device
            pass
    if dropout and (native is not None or any(n is not None for n in natives)):
        warn("the dropout masks restart from a new seed: this unseeded run was saved on "
             "another kind of device or by another number of processes (use -seed for "
             "runs that move)")


def _stop_together(context, failure):
    """After a step only rank 0 may fail (validation, writing): every process stops with it
    instead of waiting for it in the next collective."""
    if distributed.any_process(context, failure is not None):
        if failure is not None:
            raise failure
        raise TorchRNNError("stopped because process 0 failed (its error is above)")


def _row_share(rows, batch_size):
    """(first row, last row + 1, all rows) of this process's streams, or None."""
    return None if rows is None else (rows.start, rows.stop, batch_size)


class _CsvLog:
    """One row per iteration (-log_csv), flushed as written so a run can be followed live.
    ``keep_until``: resuming from iteration i keeps the rows up to i and appends after them."""

    HEADER = "i,epoch,loss,learning_rate,seconds,val_loss\n"

    def __init__(self, path, keep_until=None):
        check_output_path(path, "CSV log", create_dir=True)
        kept = []
        if keep_until is not None and os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                kept = [line for line in f.readlines()[1:]
                        if line.split(",", 1)[0].isdigit()
                        and int(line.split(",", 1)[0]) <= keep_until]
        with atomic_output(path, "w", what="CSV log", encoding="utf-8") as f:
            f.write(self.HEADER)
            f.writelines(kept)
        self.file = open(path, "a", encoding="utf-8", buffering=1)

    def write(self, i, epoch, loss, learning_rate, seconds, val_loss):
        val = "" if val_loss is None else repr(val_loss)
        self.file.write(f"{i},{epoch!r},{loss!r},{learning_rate!r},{seconds:.3f},{val}\n")

    def close(self):
        self.file.close()


@contextlib.contextmanager
def _interrupt_flag(enabled):
    """While active, SIGINT/SIGTERM set a flag (read by calling the yielded function)
    instead of stopping the process; a second signal stops it at once. Yields None when
    not enabled."""
    caught = []
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield None
        return

    def handler(signum, frame):
        if caught:
            raise KeyboardInterrupt
        caught.append(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: bool(caught)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _train_step(net, model, optimizer, loader, rows, device, opt, history, memory_base, say,
                context):
    """One forward/backward/clamp/Adam step on the next training batch; returns the loss
    (over the whole batch, all processes' streams)."""
    x, y = loader.next_batch("train", rows)
    x, y = x.to(device), y.to(device)
    optimizer.zero_grad(set_to_none=False)
    if opt.speed_benchmark:
        _synchronize(device)
        start = time.perf_counter()
    scores = net(x)
    model.loss(scores, y).backward()
    if opt.speed_benchmark:
        _synchronize(device)
        elapsed = time.perf_counter() - start
        say("Forward / Backward pass took ", lua_number(elapsed))
        history["forward_backward_times"].append(elapsed)
    if memory_base is not None:
        used = _gpu_memory_used(device) - memory_base
        say("Using %dMB of memory" % (used / 1024 / 1024))
        history["memory_usage"].append(used)
    loss = torch7_loss_value(scores, y, context)
    clamp_gradients_(model.parameters(), opt.grad_clip)
    optimizer.step()
    return loss


def _check_checkpoint_dir(opt):
    """Fail before training, not hours later, if checkpoints cannot be written."""
    path = "%s_%d.t7" % (opt.checkpoint_name, 0)
    check_output_path(path, "checkpoint", create_dir=True)


def _synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _gpu_memory_used(device):
    free, total = torch.cuda.mem_get_info(device)
    return total - free


def main(argv=None):
    """``torchrnn-train``: train.lua's command line (torchrnn_py/cli/train.py)."""
    from .cli.train import main as cli_main
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
