"""train.lua: train a LanguageModel on a preprocessed HDF5/JSON dataset.

Same single-dash flags, defaults, printed lines and checkpoint files as torch-rnn's
``th train.lua`` (docs/compatibility.md, train), plus new flags whose defaults keep the
original behaviour: ``-seed N`` (what ``torch.manualSeed(N)`` would have meant to the
original). The loop reads like train.lua's: set up, step, validate and save, interrupt;
what it changes is one :class:`~torchrnn_py.training_state.TrainingState`.

Library use: ``train(input_h5=..., input_json=..., rnn_size=..., verbose=True)`` takes the
flags as keyword arguments and returns the histories and the trained model.
"""
import contextlib
import math
import signal
import sys
import threading
import time
import typing

import torch

from .. import checkpoint as ckpt
from .. import distributed
from ..cmdline import Terminated, lua_number, make_printers, print_stderr
from ..criterion import PendingLoss
from ..data import DataLoader
from ..device import choose_device, use_precision
from ..errors import TorchRNNError
from ..evaluate import evaluate_split
from ..fileio import check_stdout_distinct
from ..model import LanguageModel
from ..optim import TorchAdam, clamp_gradients_
from ..rng import TorchGenerator, os_seed
# DEFAULTS, OPTIONS, TrainOptions and model_parameter_count are re-exported (the old path)
from ..train_checks import (DEFAULTS, FLOAT32_MAX, OPTIONS, TrainOptions, check_checkpoint_dir,
                           check_finite_weights, check_outputs, memory_error, memory_message,
                           model_parameter_count, nothing_to_do, physical_memory,
                           resolve_options, resumed_options, start_iteration)  # noqa: F401
from ..train_csv import CsvLog
from ..training_state import TrainingState
from ..vocab import model_token_map, read_vocab, token_map_message

PROG = "torchrnn-train"


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
        options = resumed_options(checkpoint, resume_source, options)
    opt = resolve_options(options)
    if verbose and log is None:              # train.lua's lines are printed: not into an input
        check_stdout_distinct(input_h5=opt.input_h5, input_json=opt.input_json,
                              init_from_checkpoint=opt.init_from,
                              resume_from_checkpoint=opt.resume_from)
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
        return print_stderr
    return lambda msg: None



def _train(opt, checkpoint, context, device, printers, interrupted, progress=None):
    """The loop of train.lua (docs/compatibility.md, train), for one process of
    ``context``: set up, then step, validate and save, until done or interrupted."""
    run = _Run.set_up(opt, checkpoint, context, device, printers)
    if run.num_iterations <= run.state.i:
        run.warn(nothing_to_do(opt, run.state.i, run.num_iterations, run.num_train))
        return run.result()
    return run.loop(interrupted, progress)


class _Launched(typing.NamedTuple):
    """A training step queued: its iteration, its :class:`PendingLoss`, and the learning
    rate it used (the next epoch may change it before the loss is read)."""
    i: int
    loss: PendingLoss
    learning_rate: float


def loss_lag(opt, device):
    """Whether an iteration's loss may be read after the next step is queued: on a GPU,
    unless a step prints lines of its own (-speed_benchmark, -memory_benchmark), which
    must follow the previous iteration's line."""
    return device.type == "cuda" and not (opt.speed_benchmark or opt.memory_benchmark)


class _Run:
    """One process's run once set up: ``opt``, the :class:`TrainingState` and where it
    trains; each phase of train.lua's loop is a method."""

    def __init__(self, opt, state, context, device, printers, rows, num_iterations):
        self.opt, self.state, self.context, self.device = opt, state, context, device
        self.say, self.warn, self.notice = printers
        self.rows = rows                    # this process's rows of the batch, or None
        self.loss_lag = loss_lag(opt, device)
        self.num_iterations = num_iterations
        self.num_train = state.loader.split_sizes["train"]
        self.net = state.model              # what the forward pass runs (DDP under torchrun)
        self.memory_base = None
        self.csv_log = None

    @classmethod
    def set_up(cls, opt, checkpoint, context, device, printers):
        """Read the data, build or load the model, put back a resumed run: what train.lua
        does before its loop, in its order."""
        say, warn, _ = printers
        vocab = read_vocab(opt.input_json)
        seeded = opt.seed >= 0
        generator = TorchGenerator(opt.seed if seeded else os_seed())
        source = opt.resume_from or opt.init_from
        if opt.init_from:
            checkpoint = ckpt.load_checkpoint(opt.init_from)
        start_i = start_iteration(opt, checkpoint)
        loader = _data_loader(opt, vocab, checkpoint, source, say, warn)
        train_rows = loader.batch_sizes["train"]      # opt's batch size, or less for tiny data
        rows = context.rows(train_rows) if context.active else None
        num_iterations = int(math.floor(opt.max_epochs * loader.split_sizes["train"]))
        check_outputs(opt, start_i, num_iterations)
        if checkpoint is not None:
            say("Resuming from " if opt.resume_from else "Initializing from ", source)
            model = checkpoint.model
        else:
            model = _new_model(opt, vocab, train_rows, generator)
        _place_model(model, opt, device, warn)
        loader.keep_on(device)
        native = _dropout_generator(model, generator, seeded, device, rows, train_rows)
        state = TrainingState(model, TorchAdam(model.parameters(), lr=opt.learning_rate),
                              loader, generator, native, opt.learning_rate, i=start_i)
        if opt.resume_from:
            state.load_histories(checkpoint.histories(opt.resume_from))
            state.load_state_dict(checkpoint.resume, opt.resume_from, rows, context, device,
                                  warn)
        return cls(opt, state, context, device, printers, rows, num_iterations)

    def result(self):
        """train()'s dict: the histories, ``opt``, ``i`` and the model."""
        return dict(self.state.histories(), opt=self.opt.as_dict(), i=self.state.i,
                    model=self.state.model)

    def loop(self, interrupted, progress):
        """train.lua's loop, from the iteration after ``state.i`` to the last. With
        ``loss_lag`` an iteration's loss is read once the next step is queued (a GPU then
        never idles while the host reads it); its lines come out in the same order."""
        self._prepare()
        self.state.start_clock()
        self.state.model.train()
        watching = interrupted is not None
        if watching and interrupted():              # Ctrl-C while setting up: nothing to save
            raise Terminated() if interrupted() == signal.SIGTERM else KeyboardInterrupt()
        waiting = None                              # a launched step not yet finished
        try:
            for i in range(self.state.i + 1, self.num_iterations + 1):
                try:
                    launched = self.launch(i)
                finally:                            # iteration i-1's lines come first
                    if waiting is not None:
                        self.finish(waiting, progress)
                        waiting = None
                if self.loss_lag and not self.saves_at(i):
                    waiting = launched
                else:
                    self.finish(launched, progress)
                if watching and distributed.any_process(self.context, interrupted()):
                    if waiting is not None:
                        self.finish(waiting, progress)
                        waiting = None
                    if i == self.num_iterations:    # finished anyway, final checkpoint written
                        break
                    self.interrupt(i, terminated=interrupted() == signal.SIGTERM)
        finally:
            if self.csv_log is not None:
                self.csv_log.close()
        return self.result()

    def _prepare(self):
        """Before the first step: the checkpoint folder, the memory baseline, DDP, the CSV."""
        opt, device = self.opt, self.device
        check_checkpoint_dir(opt)                   # every process: fail before training
        if opt.memory_benchmark and device.type == "cuda":
            self.memory_base = _gpu_memory_used(device)
        if self.context.active:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.state.model, device_ids=[device.index] if device.type == "cuda" else None)
        if opt.log_csv and self.context.is_main:
            self.csv_log = CsvLog(opt.log_csv,
                                   keep_until=self.state.i if opt.resume_from else None)
            self.notice(f"writing CSV log {opt.log_csv}")

    def saves_at(self, i):
        """Whether iteration ``i`` validates and writes a checkpoint."""
        every = self.opt.checkpoint_every
        return (every > 0 and i % every == 0) or i == self.num_iterations

    def launch(self, i):
        """Iteration ``i`` up to its loss: the epoch's resets and one training step;
        returns the :class:`_Launched` step (its loss maybe still on the device)."""
        if i % self.num_train == 0:
            self._new_epoch(i)
        self.state.i = i
        return _Launched(i, self._train_step(), self.state.learning_rate)

    def finish(self, step, progress):
        """The rest of iteration ``step.i``: its loss read, checked, kept and printed; the
        validation and checkpoint when due; the CSV row and the progress call."""
        opt, i = self.opt, step.i
        loss = step.loss.value()
        if not math.isfinite(loss):
            raise TorchRNNError(
                f"the training loss became {loss} at iteration {i}: training diverged "
                f"and stopped (no checkpoint of it was written); try a lower "
                f"-learning_rate (now {step.learning_rate:g}) or -grad_clip")
        self.state.train_loss_history.append(loss)
        if opt.print_every > 0 and i % opt.print_every == 0:
            self.say("Epoch %.2f / %d, i = %d / %d, loss = %f"
                     % (i / self.num_train + 1, opt.max_epochs, i, self.num_iterations, loss))
        val_loss = written = None
        if self.saves_at(i):
            val_loss, written = self.validate_and_save(i)
        self.report(i, loss, step.learning_rate, val_loss, written, progress)

    def _new_epoch(self, i):
        """At an epoch's end: forget the recurrent states; every lr_decay_every epochs
        decay the learning rate and (train.lua's quirk) drop Adam's state."""
        opt, state = self.opt, self.state
        epoch = i // self.num_train + 1
        state.model.reset_states()
        if opt.lr_decay_every > 0 and epoch % opt.lr_decay_every == 0:
            learning_rate = state.learning_rate * opt.lr_decay_factor
            if not abs(learning_rate) <= FLOAT32_MAX:
                raise TorchRNNError(f"the learning rate became {learning_rate:g} at "
                                    f"iteration {i} (-lr_decay_factor "
                                    f"{opt.lr_decay_factor}): too large to train")
            state.optimizer.reset_state()
            state.set_learning_rate(learning_rate)

    def _train_step(self):
        """One forward/backward/clamp/Adam step on the next training batch; returns its
        :class:`PendingLoss` (over the whole batch, all processes' streams)."""
        state, device = self.state, self.device
        x, y = state.loader.next_batch("train", self.rows)              # (N, T) each
        x, y = x.to(device), y.to(device)
        state.optimizer.zero_grad(set_to_none=False)
        if self.opt.speed_benchmark:
            _synchronize(device)
            start = time.perf_counter()
        scores = self.net(x)                                            # (N, T, V)
        state.model.loss(scores, y).backward()
        if self.opt.speed_benchmark:
            _synchronize(device)
            elapsed = time.perf_counter() - start
            self.say("Forward / Backward pass took ", lua_number(elapsed))
            state.forward_backward_times.append(elapsed)
        if self.memory_base is not None:
            used = _gpu_memory_used(device) - self.memory_base
            self.say("Using %dMB of memory" % (used / 1024 / 1024))
            state.memory_usage.append(used)
        loss = PendingLoss(scores, y, self.context)
        clamp_gradients_(state.model.parameters(), self.opt.grad_clip)
        state.optimizer.step()
        return loss

    def validate_and_save(self, i):
        """The val loss (rank 0) and the checkpoint of iteration ``i``; returns (val loss,
        the .t7 written), each None on the other processes."""
        state, context = self.state, self.context
        val_loss = written = failure = None
        try:
            if context.is_main:
                val_loss = evaluate_split(state.model, state.loader, "val", self.device)
                self.say("val_loss = ", lua_number(val_loss))
                state.val_loss_history.append(val_loss)
                state.val_loss_history_it.append(i)
            state.model.reset_states()
            state.model.train()
        except (TorchRNNError, OSError) as err:
            failure = err
        _stop_together(context, failure)            # the others wait here (no timeout)
        try:
            written = self.write_checkpoint(i, None)
        except (TorchRNNError, OSError) as err:
            failure = err
        _stop_together(context, failure)
        return val_loss, written

    def write_checkpoint(self, at, layer_states):
        """Rank 0 writes ``<checkpoint_name>_<at>.t7`` and ``.json``; returns the .t7 path
        (None on the other processes)."""
        state = self.state
        check_finite_weights(state.model, at)
        natives = distributed.gather_objects(
            self.context, state.native.get_state() if state.native is not None else None)
        if not self.context.is_main:
            return None
        resume = state.state_dict(natives, layer_states)
        path = "%s_%d.t7" % (self.opt.checkpoint_name, at)
        ckpt.Checkpoint(state.model, opt=self.opt.as_dict(), i=at, resume=resume,
                        **state.histories()).save(path)
        self.notice(f"wrote {path}")
        self.notice(f"wrote {ckpt.json_twin(path)}")
        return path

    def report(self, i, loss, learning_rate, val_loss, written, progress):
        """The CSV row and the progress callback of iteration ``i``."""
        seconds = self.state.seconds()
        if self.csv_log is not None:
            self.csv_log.write(i, i / self.num_train + 1, loss, learning_rate, seconds,
                               val_loss)
        if progress is not None:
            progress({"i": i, "num_iterations": self.num_iterations,
                      "epoch": i / self.num_train + 1, "loss": loss,
                      "learning_rate": learning_rate, "val_loss": val_loss,
                      "checkpoint": written, "seconds": seconds})

    def interrupt(self, i, terminated=False):
        """Interrupted after iteration ``i``: write a checkpoint that -resume_from continues
        exactly (with the recurrent states of every process) and stop."""
        states = [None if state is None else
                  tuple(distributed.gather_rows(self.context, t) for t in state)
                  for state in self.state.model.get_states()]
        path = self.write_checkpoint(i, states)
        distributed.barrier(self.context)
        if path:
            self.say(f"Interrupted after iteration {i}: wrote {path} "
                     f"(continue with -resume_from {path})")
        raise Terminated() if terminated else KeyboardInterrupt()


def _data_loader(opt, vocab, checkpoint, source, say, warn):
    """The DataLoader of opt's data, mapping its tokens to a loaded model's when they differ."""
    token_map = None
    if source:
        token_map = model_token_map(vocab, checkpoint.model.vocab, opt.input_json, source)
        if token_map is not None:
            warn(token_map_message(token_map, checkpoint.model.vocab_size))
    return DataLoader(opt.input_h5, opt.batch_size, opt.seq_length,
                      vocab_size=len(vocab), log=say, token_map=token_map)


def _place_model(model, opt, device, warn):
    """The model on its device at its precision; one line when it does not fit."""
    try:
        model.to(device)
    except (RuntimeError, MemoryError) as err:
        raise memory_error(err, opt.as_dict(), model) from None
    use_precision(model, opt.precision, device, warn)


def _dropout_generator(model, generator, seeded, device, rows, train_rows):
    """Give the model its dropout masks' generator; returns PyTorch's (unseeded on a GPU)
    or None when the masks come from Torch7's ``generator``."""
    if seeded or device.type == "cpu":
        # Torch7's masks from Torch7's generator, as the original draws them (on the CPU
        # this is also the fastest way: numpy draws them faster than torch.bernoulli_)
        model.set_dropout_generator(generator, rows=_row_share(rows, train_rows))
        return None
    # unseeded on a GPU: PyTorch's own masks, drawn on the device
    native = torch.Generator(device=device)
    native.manual_seed(os_seed() & (2 ** 63 - 1))
    model.set_dropout_generator(native)
    return native


def _stop_together(context, failure):
    """After a step only rank 0 may fail (validation, writing): every process stops with it
    instead of waiting for it in the next collective."""
    if distributed.any_process(context, failure is not None):
        if failure is not None:
            raise failure
        raise TorchRNNError("stopped because process 0 failed (its error is above)")


def _new_model(opt, vocab, batch_rows, generator):
    """A fresh LanguageModel of opt's size; one line (not an allocator traceback) when it
    cannot fit in this machine's memory."""
    H, L, T = int(opt.rnn_size), int(opt.num_layers), int(opt.seq_length)
    params = model_parameter_count(opt.model_type, len(vocab), int(opt.wordvec_size),
                                   H, L, opt.batchnorm)
    # float32 weights, gradients and two Adam moments, plus the activations of a batch
    needed = 4 * (4 * params + batch_rows * T * (8 * H * L + 3 * len(vocab)))
    memory = physical_memory()
    if memory is not None and needed > memory:
        raise TorchRNNError(memory_message(opt.as_dict(), params, needed, memory))
    try:
        return LanguageModel(vocab, opt.model_type, opt.wordvec_size, opt.rnn_size,
                             opt.num_layers, opt.dropout, opt.batchnorm,
                             generator=generator)
    except (RuntimeError, MemoryError) as err:
        raise memory_error(err, opt.as_dict(), None, params) from None


def _row_share(rows, batch_size):
    """(first row, last row + 1, all rows) of this process's streams, or None."""
    return None if rows is None else (rows.start, rows.stop, batch_size)


@contextlib.contextmanager
def _interrupt_flag(enabled):
    """While active, SIGINT/SIGTERM set a flag instead of stopping the process; calling the
    yielded function gives the first signal's number (0: none yet). A second signal stops
    it at once. Yields None when not enabled."""
    caught = []
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield None
        return

    def handler(signum, frame):
        if caught:
            raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
        caught.append(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: caught[0] if caught else 0
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _gpu_memory_used(device):
    free, total = torch.cuda.mem_get_info(device)
    return total - free
