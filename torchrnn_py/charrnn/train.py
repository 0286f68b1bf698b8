"""char-rnn's train.lua: the same flags, printed lines, data folder, initialisation, updates
and checkpoints, so that the same seed gives the same losses (docs/compatibility.md,
"char-rnn: train.lua").

What it reproduces (tests/fixtures/charrnn/README.md, "train.lua and the loader"):
``torch.manualSeed(seed)`` first; the Linear constructors' draws, then ``params:uniform(-0.08,
0.08)`` over the flat vector and the LSTM forget-gate biases set to 1; minibatches in order
with the state carried across them (and, as train.lua's aliased state tensors do, from the
last validation batch after an evaluation); the loss as the mean over steps of the batch-mean
NLL and the gradient of its sum, clamped element-wise; optim.rmsprop; the learning-rate
decay; dropout noise drawn from the same Torch7 generator in the clones' order. The
faithful trainer (:class:`FaithfulTrainer`, the model of :mod:`.net`) computes in float64 on
the CPU, as char-rnn's ``-gpuid -1``; ``-gpuid N`` with CUDA, or ``-fast 1``, runs the same
maths on fused kernels (:mod:`.fast`; :func:`choose_trainer` decides). The data folder is
:mod:`.data`.

Library use: ``train_charrnn(data_dir=..., rnn_size=..., verbose=True)`` takes the flags as
keyword arguments; printed lines (each ending in the TAB that th's print adds) go to stdout
when ``verbose`` or to ``log``.
"""
import math
import os
import time

import torch

from ..cmdline import lua_number, require_finite, resolve_keyword_options
from ..errors import TorchRNNError
from ..fileio import check_input_file, check_output_path, check_stdout_distinct
from ..rng import TorchGenerator
from ..device import physical_memory
from ..t7 import read_t7
from .checkpoint import charrnn_from_t7, is_charrnn
from .data import data_paths, load_data_dir, split_fractions
from .fast import RMSPROP_EPSILON, FastTrainer
from .graph import read_graph
from .net import LAYER_LINEARS, CharRNNNet, dropout_masks, evaluate_batches, forward_backward
from .topology import find_layers

PROG = "torchrnn-charrnn-train"
MODEL_TYPES = ("lstm", "gru", "rnn")

#: train.lua's options in its order: (name, default, help).
OPTIONS = [
    ("data_dir", "data/tinyshakespeare", "folder holding input.txt (vocab.t7 and data.t7 "
     "are written beside it)"),
    ("rnn_size", 128, "size of each layer's hidden state"),
    ("num_layers", 2, "number of layers"),
    ("model", "lstm", "lstm, gru or rnn"),
    ("learning_rate", 2e-3, "learning rate"),
    ("learning_rate_decay", 0.97, "factor applied to the learning rate after each epoch"),
    ("learning_rate_decay_after", 10, "epoch after which the learning rate decays"),
    ("decay_rate", 0.95, "RMSprop's smoothing constant (alpha)"),
    ("dropout", 0, "dropout on each layer's input above the first and on the top layer; "
     "0 = none"),
    ("seq_length", 50, "time steps per minibatch (truncated backpropagation)"),
    ("batch_size", 50, "sequences per minibatch"),
    ("max_epochs", 50, "passes through the training data"),
    ("grad_clip", 5, "clamp each gradient element to [-grad_clip, grad_clip]"),
    ("train_frac", 0.95, "fraction of the batches used for training"),
    ("val_frac", 0.05, "fraction of the batches used for validation (the rest: test)"),
    ("init_from", "", "start from the weights of this char-rnn checkpoint"),
    ("seed", 123, "torch.manualSeed seed"),
    ("print_every", 1, "iterations between progress lines"),
    ("eval_val_every", 1000, "iterations between validations (and checkpoints)"),
    ("checkpoint_dir", "cv", "folder the checkpoints are written to"),
    ("savefile", "lstm", "checkpoints are named lm_<savefile>_epoch<e>_<val loss>.t7"),
    ("accurate_gpu_timing", 0, "1: synchronise the GPU before timing (CPU: no effect)"),
    ("gpuid", 0, "GPU to use; -1 = CPU. With CUDA: the fast trainer on that GPU in "
     "float32, as char-rnn's GPU runs; without: the faithful float64 CPU trainer"),
    ("opencl", 0, "1: use OpenCL instead of CUDA (not available: the CPU is used)"),
    ("fast", 0, "new: 1 = on the CPU too, the fast trainer (char-rnn's maths on torch-rnn's "
     "fused layers, float32: faster, not char-rnn's digits); 0 = the faithful float64 one"),
    ("double", 0, "new: 1 = the fast trainer computes in float64 (the faithful one always "
     "does)"),
]
#: Flags of this port that train.lua lacks: not saved in the checkpoints' opt.
NEW_OPTIONS = ("fast", "double")
DEFAULTS = {name: default for name, default, _ in OPTIONS}
POSITIVE_INTEGERS = ("rnn_size", "num_layers", "seq_length", "batch_size")
NAN_MESSAGE = ("loss is NaN.  This usually indicates a bug.  Please check the issues page for "
               "existing issues, or create a new issue, if none exist.  Ideally, please state: "
               "your operating system, 32-bit/64-bit, your blas version, cpu/cuda/cl?")
VOCAB_MESSAGE = ("error, the character vocabulary for this dataset and the one in the saved "
                 "checkpoint are not the same. This is trouble.")


def train_charrnn(*, verbose=False, log=None, save_checkpoint=None, max_iterations=None,
                  note=None, alias_first_step=True, **options):
    """Train as ``th train.lua`` does; keyword arguments are its flags (see OPTIONS).

    ``save_checkpoint(path, fields)`` writes each checkpoint (default: char-rnn's ``.t7``
    through torchrnn_py/charrnn/write.py); ``fields`` are the keyword arguments of its
    ``charrnn_checkpoint_table``. ``max_iterations`` stops early (no flag; for tests).
    ``note(text)`` hears which trainer runs where (not one of train.lua's lines).
    ``alias_first_step=False`` (no flag; for tests) gives the faithful trainer the exact
    gradient of each minibatch's first step, as the fast one computes it (module
    docstring of torchrnn_py/charrnn/net.py). Returns a dict: ``net`` (the
    :class:`CharRNNNet` with the final weights), ``train_losses`` (list), ``val_losses``
    ({iteration: loss}), ``i`` (the last iteration run), ``opt``, ``state`` (the state
    the next minibatch would start from, char-rnn's order) and ``trainer``."""
    opt = resolve_keyword_options(options, DEFAULTS)
    check_options(opt)
    if verbose and log is None:              # train.lua's lines are printed: not into an input
        text, vocabulary, tensor = data_paths(opt["data_dir"])
        check_stdout_distinct(input_text=text, vocabulary_file=vocabulary, data_file=tensor,
                              init_from_checkpoint=opt["init_from"])
    saver = save_checkpoint or checkpoint_writer()
    say = _th_printer(verbose, log)
    generator = TorchGenerator(opt["seed"])          # torch.manualSeed(opt.seed)
    asked_gpu = opt["gpuid"] >= 0
    backend = choose_trainer(opt, say)
    if note is not None and (asked_gpu or backend is not None or opt["double"] == 1):
        note(_trainer_note(backend, opt))
    fractions = split_fractions(opt["train_frac"], opt["val_frac"])
    loader = load_data_dir(opt["data_dir"], opt["batch_size"], opt["seq_length"],
                           fractions, say)
    say(f"vocab size: {loader.vocab_size}")
    _make_checkpoint_dir(opt["checkpoint_dir"])
    _check_savefile(opt)
    if opt["init_from"]:
        net = _net_from_checkpoint(opt, loader, say)
    else:
        say(f"creating an {opt['model']} with {lua_number(opt['num_layers'])} layers")
        _check_model_size(opt, loader.vocab_size)
        net = CharRNNNet(opt["model"], loader.vocab_size, opt["rnn_size"], opt["num_layers"],
                         opt["dropout"])
        net.init_random(generator)
    if net.model_type == "lstm":
        for layer in net.forget_bias_to_one():
            say(f"setting forget gate biases to 1 in LSTM layer {layer}")
    say(f"number of parameters in the model: {net.nparams}")
    say("cloning rnn")
    say("cloning criterion")
    if backend is None:
        trainer = FaithfulTrainer(net, generator, opt, alias_first_step)
    else:
        trainer = FastTrainer(net, loader.vocab_bytes(), generator, opt, *backend)
    run = _Run(opt, loader, trainer, say, saver)
    with trainer.threads():
        run.loop(max_iterations)
    trainer.sync_net()
    return {"net": net, "train_losses": run.train_losses, "val_losses": run.val_losses,
            "i": run.i, "opt": opt, "state": trainer.states(), "trainer": trainer}


def check_options(opt):
    """Refuse, in one line, the values train.lua would crash on, loop on or misuse."""
    require_finite(opt, [name for name, default, _ in OPTIONS
                         if isinstance(default, (int, float))])
    for name, default, _ in OPTIONS:
        if isinstance(default, str) and not isinstance(opt[name], str):
            raise TorchRNNError(f"-{name} must be a string, got {opt[name]!r}")
        if not isinstance(default, str) and (isinstance(opt[name], bool)
                                             or not isinstance(opt[name], (int, float))):
            raise TorchRNNError(f"-{name} must be a number, got {opt[name]!r}")
    if opt["model"] not in MODEL_TYPES:
        raise TorchRNNError(f"-model must be lstm, gru or rnn, found {opt['model']!r}")
    for name in POSITIVE_INTEGERS:
        if opt[name] != int(opt[name]) or opt[name] < 1:
            raise TorchRNNError(f"-{name} must be a positive integer, got {opt[name]}")
        opt[name] = int(opt[name])
    for name in ("seed", "gpuid"):
        if opt[name] != int(opt[name]):
            raise TorchRNNError(f"-{name} must be an integer, got {lua_number(opt[name])}")
    if not 0 <= opt["dropout"] < 1:
        raise TorchRNNError(f"-dropout must be at least 0 and below 1, got {opt['dropout']}")
    for name in NEW_OPTIONS:
        if opt[name] not in (0, 1):
            raise TorchRNNError(f"-{name} must be 0 or 1, got {lua_number(opt[name])}")
    if not 0 <= opt["decay_rate"] <= 1:
        raise TorchRNNError(f"-decay_rate must lie in [0, 1], got {opt['decay_rate']}")
    for name in ("grad_clip", "max_epochs"):
        if not opt[name] > 0:
            raise TorchRNNError(f"-{name} must be greater than 0, got {opt[name]}")
    if not opt["checkpoint_dir"]:
        raise TorchRNNError("-checkpoint_dir must not be empty")
    split_fractions(opt["train_frac"], opt["val_frac"])
    if opt["init_from"]:
        check_input_file(opt["init_from"], "checkpoint")


def checkpoint_writer():
    """The default ``save_checkpoint``: char-rnn's checkpoint table, written as train.lua's
    ``torch.save`` writes it (torchrnn_py/charrnn/write.py), atomically."""
    from .write import charrnn_checkpoint_table, write_charrnn_checkpoint

    def save(path, fields):
        write_charrnn_checkpoint(path, charrnn_checkpoint_table(**fields))
    return save


def _th_printer(verbose, log):
    """``say(text)``: one line as th's print writes it (the text, then a TAB)."""
    def say(text):
        line = f"{text}\t"
        if log is not None:
            log(line)
        elif verbose:
            print(line, flush=True)
    return say


def choose_trainer(opt, say):
    """Where to train, printing train.lua's GPU lines: ``(device, dtype)`` for the fast
    trainer, or None for the faithful float64 one. ``-gpuid N`` with CUDA: GPU N, float32
    (``-double 1``: float64); otherwise the fallback lines and the CPU, fast with
    ``-fast 1``."""
    gpuid = opt["gpuid"]
    dtype = torch.float64 if opt["double"] == 1 else torch.float32
    if gpuid >= 0 and opt["opencl"] == 0 and torch.cuda.is_available():
        count = torch.cuda.device_count()
        if gpuid != int(gpuid) or gpuid >= count:
            raise TorchRNNError(f"-gpuid {lua_number(gpuid)}: this machine has {count} CUDA "
                                f"device(s), numbered from 0 (-gpuid -1: the CPU)")
        say(f"using CUDA on GPU {lua_number(gpuid)}...")
        torch.cuda.set_device(int(gpuid))
        return torch.device("cuda", int(gpuid)), dtype
    _gpu_fallback(opt, say)
    return (torch.device("cpu"), dtype) if opt["fast"] == 1 else None


def _trainer_note(backend, opt):
    if backend is None:
        return ("training runs on the CPU in float64 (what char-rnn computes with -gpuid -1)"
                + ("" if opt["double"] == 0 else "; -double 1 only changes the fast trainer"))
    device, dtype = backend
    where = "on the CPU" if device.type == "cpu" else f"on {device}"
    digits = "not its digits" if dtype == torch.float32 else "without its aliased first step"
    return (f"fast trainer {where} in {str(dtype)[6:]}: char-rnn's maths on fused kernels, "
            f"{digits} (docs/migration.md)")


def _gpu_fallback(opt, say):
    """The lines train.lua prints for ``-gpuid >= 0`` without cutorch/cunn (or cltorch/
    clnn); it then trains on the CPU with ``opt.gpuid = -1``."""
    if opt["gpuid"] < 0 or opt["opencl"] not in (0, 1):
        return
    nn, lib, what = ("cunn", "cutorch", "CUDA toolkit") if opt["opencl"] == 0 \
        else ("clnn", "cltorch", "OpenCL driver")
    say(f"package {nn} not found!")
    say(f"package {lib} not found!")
    say(f"If {lib} and {nn} are installed, your {what} may be improperly configured.")
    say(f"Check your CUDA toolkit installation, rebuild {lib} and {nn}, and try again."
        if opt["opencl"] == 0 else "Check your OpenCL driver installation, check output of "
        "clinfo command, and try again.")
    say("Falling back on CPU mode")
    opt["gpuid"] = -1


def _check_savefile(opt):
    """A checkpoint name that cannot be written is refused now, not after the training:
    ``-savefile`` is part of a file name in ``-checkpoint_dir``."""
    name = f"lm_{opt['savefile']}_epoch0.00_0.0000.t7"
    if not opt["savefile"] or "/" in opt["savefile"] or len(os.fsencode(name)) > 255:
        raise TorchRNNError(f"-savefile {opt['savefile']!r}: checkpoints are named "
                            f"{opt['checkpoint_dir']}/lm_<savefile>_epoch<e>_<loss>.t7, so it "
                            f"must be a non-empty name without '/' (at most about 230 bytes)")
    check_output_path(os.path.join(opt["checkpoint_dir"], name), "char-rnn checkpoint")


def _check_model_size(opt, vocab_size):
    """One line for a model too large for this machine's memory (float64 parameters, their
    gradients, RMSprop's state and the clones' activations), before it is allocated."""
    H, L, V = opt["rnn_size"], opt["num_layers"], vocab_size
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[opt["model"]]
    params = sum(gates * H * ((V if k == 0 else H) + H + 2) for k in range(L)) + V * (H + 1)
    activations = opt["batch_size"] * opt["seq_length"] * (L * (gates + 2) * H + 2 * V)
    needed = 8 * (4 * params + 3 * activations)
    memory = physical_memory()
    if memory is not None and needed > memory:
        raise TorchRNNError(f"the model asked for is too large for this machine (-model "
                            f"{opt['model']} -num_layers {L} -rnn_size {H}: {params:,} "
                            f"parameters, about {needed / 2 ** 30:,.1f} GiB to train, "
                            f"{memory / 2 ** 30:,.1f} GiB of memory)")


def _make_checkpoint_dir(path):
    """train.lua's ``lfs.mkdir(checkpoint_dir)`` when it is missing; here also checked to
    be a writable folder now, not when the first checkpoint is due."""
    if os.path.islink(path) and not os.path.exists(path):
        raise TorchRNNError(f"{path}: -checkpoint_dir is a symbolic link to "
                            f"{os.readlink(path)!r}, which does not exist")
    if not os.path.exists(path):
        try:
            os.mkdir(path)
        except OSError as err:
            raise TorchRNNError(f"{path}: cannot create -checkpoint_dir: "
                                f"{err.strerror or err}") from None
    if not os.path.isdir(path):
        raise TorchRNNError(f"{path}: -checkpoint_dir is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise TorchRNNError(f"{path}: -checkpoint_dir is not writable")


def _net_from_checkpoint(opt, loader, say):
    """``-init_from``: the checkpoint's model (its own Linears, biases kept apart), after
    train.lua's vocabulary check; opt's rnn_size, num_layers and model are overwritten."""
    path = opt["init_from"]
    say(f"loading a model from checkpoint {path}")
    root = read_t7(path)
    if not is_charrnn(root):
        raise TorchRNNError(f"{path}: not a char-rnn checkpoint: expected a table with "
                            f"protos.rnn and vocab, as char-rnn's train.lua saves")
    ck = charrnn_from_t7(root, path)
    _check_vocab(root["vocab"], loader.vocab_mapping, path, say)
    model = ck.model
    if any(not module.v2 for module in model.dropouts):
        raise TorchRNNError(f"{path}: its nn.Dropout modules scale at evaluation (v1), not "
                            f"in training as char-rnn's do; such a model is not supported")
    shown = {k: ck.opt.get(k, v) for k, v in (("rnn_size", model.rnn_size),
                                               ("num_layers", model.num_layers),
                                               ("model", ck.model_type))}
    say("overwriting rnn_size=%s, num_layers=%s, model=%s based on the checkpoint."
        % tuple(lua_number(v) if isinstance(v, (int, float)) else v for v in shown.values()))
    opt.update(rnn_size=model.rnn_size, num_layers=model.num_layers, model=ck.model_type)
    net = CharRNNNet(ck.model_type, loader.vocab_size, model.rnn_size, model.num_layers,
                     model.dropout)
    net.set_linears(file_linears(root, ck.model_type, model.num_layers, path))
    return net


def _check_vocab(table, vocab_mapping, path, say):
    """train.lua's test: every (char, id) of the checkpoint's vocab is the data's, and
    both have as many entries."""
    compatible = True
    for char, index in table.items():
        key = char.encode("utf-8", "surrogateescape") if isinstance(char, str) else None
        if vocab_mapping.get(key) != index:
            compatible = False
    if len(table) != len(vocab_mapping):
        compatible = False
        say(f"checkpoint_vocab_size: {len(table)}")
    if not compatible:
        raise TorchRNNError(f"{path}: {VOCAB_MESSAGE}")


def file_linears(root, model_type, num_layers, path):
    """The ``(W, b)`` float64 pairs of a char-rnn checkpoint's Linears in modules order
    (as :class:`CharRNNNet` lays them out), told apart by the graph's wiring; each bias
    stays its own (load_charrnn sums the two of each gate)."""
    def fail(message):
        raise TorchRNNError(f"{path}: not a usable char-rnn checkpoint: {message}")
    graph = read_graph(root["protos"]["rnn"], fail)
    layers, decoder, _ = find_layers(graph, model_type, num_layers, fail)
    nodes = [roles[role] for roles in layers for role, _, _ in LAYER_LINEARS[model_type]]
    out = []
    for node in nodes + [decoder]:
        weight = node.module["weight"].double()
        bias = node.module.get("bias")
        out.append((weight, torch.zeros(weight.shape[0], dtype=torch.float64)
                    if bias is None else bias.double()))
    return out


def lua_mod(a, b):
    """Lua's ``a % b`` (``a - floor(a/b)*b``; NaN for b = 0, so ``i % 0 == 0`` is false)."""
    if b == 0:
        return math.nan
    return a - math.floor(a / b) * b


class FaithfulTrainer:
    """train.lua's arithmetic, float64 on the CPU: torchrnn_py/charrnn/net.py's per-step
    model on the flat parameter vector, optim.rmsprop on it. ``alias_first_step``: the
    backward pass of each minibatch's first step reads the aliased state, as train.lua's."""

    def __init__(self, net, generator, opt, alias_first_step=True):
        self.net, self.gen, self.opt = net, generator, opt
        self.B, self.T = opt["batch_size"], opt["seq_length"]
        self.state = net.zero_state(self.B)          # init_state_global
        self.alias = alias_first_step
        self.stale = False                           # see torchrnn_py/charrnn/net.py
        self.m = torch.zeros_like(net.params)        # rmsprop's state.m
        self.grad = torch.zeros_like(net.params)     # the last clamped gradient

    def threads(self):
        return self.net.threads(self.B)

    def step(self, x, y, learning_rate):
        """One optim.rmsprop call on feval for the minibatch x, y: the loss."""
        masks = dropout_masks(self.gen, self.net, self.B, self.T)
        loss, grad, self.state = forward_backward(self.net, x, y, self.state, masks,
                                                  self.stale)
        self.stale = self.alias
        clip = self.opt["grad_clip"]
        grad.clamp_(-clip, clip)
        self.grad = grad
        alpha = self.opt["decay_rate"]
        self.m.mul_(alpha).addcmul_(grad, grad, value=1.0 - alpha)
        denominator = self.m.sqrt().add_(RMSPROP_EPSILON)
        self.net.params.addcdiv_(grad, denominator, value=-learning_rate)
        return loss

    def norm(self):
        """``grad_params:norm() / params:norm()``."""
        return float(self.grad.norm()) / float(self.net.params.norm())

    def evaluate(self, batches, on_batch=None):
        """eval_split's loss; the training state continues from its last batch's (train.lua's
        carried state tensors are the clones' outputs, which it overwrites)."""
        loss, self.state = evaluate_batches(self.net, batches, self.B, on_batch)
        return loss

    def linears(self):
        return self.net.linears()

    def grad_linears(self):
        return self.net.linears(self.grad)

    def sync_net(self):
        """Nothing to do: the net's own parameters are trained."""

    def states(self):
        return self.state


class _Run:
    """train.lua's optimisation loop over one loader and trainer (:class:`FaithfulTrainer`
    or torchrnn_py/charrnn/fast.py's); each phase is a method."""

    def __init__(self, opt, loader, trainer, say, saver):
        self.opt, self.loader, self.trainer = opt, loader, trainer
        self.net = trainer.net
        self.say, self.saver = say, saver
        self.learning_rate = opt["learning_rate"]
        self.train_losses, self.val_losses = [], {}
        self.iterations = opt["max_epochs"] * loader.ntrain
        self.i = 0

    def loop(self, max_iterations=None):
        last = math.floor(self.iterations)
        if max_iterations is not None:
            last = min(last, max_iterations)
        loss0 = None
        for i in range(1, last + 1):
            self.i = i
            epoch = i / self.loader.ntrain
            start = time.perf_counter()
            x, y = self.loader.next_batch(1)
            loss = self.trainer.step(x, y, self.learning_rate)
            elapsed = time.perf_counter() - start
            self.train_losses.append(loss)
            self.decay(i, epoch)
            if lua_mod(i, self.opt["eval_val_every"]) == 0 or i == self.iterations:
                self.validate_and_save(i, epoch)
            if lua_mod(i, self.opt["print_every"]) == 0:
                self.say("%d/%d (epoch %.3f), train_loss = %6.8f, grad/param norm = %6.4e, "
                         "time/batch = %.4fs" % (i, int(self.iterations), epoch, loss,
                                                 self.trainer.norm(), elapsed))
            if loss != loss:
                self.say(NAN_MESSAGE)
                break
            loss0 = loss if loss0 is None else loss0
            if loss > loss0 * 3:
                self.say("loss is exploding, aborting.")
                break

    def decay(self, i, epoch):
        decay = self.opt["learning_rate_decay"]
        if lua_mod(i, self.loader.ntrain) == 0 and decay < 1 \
                and epoch >= self.opt["learning_rate_decay_after"]:
            self.learning_rate *= decay
            self.say(f"decayed learning rate by a factor {lua_number(decay)} to "
                     f"{lua_number(self.learning_rate)}")

    def validate_and_save(self, i, epoch):
        val_loss = self.eval_split(2)
        self.val_losses[i] = val_loss
        path = "%s/lm_%s_epoch%.2f_%.4f.t7" % (self.opt["checkpoint_dir"],
                                               self.opt["savefile"], epoch, val_loss)
        self.say(f"saving checkpoint to {path}")
        opt = {k: v for k, v in self.opt.items() if k not in NEW_OPTIONS}
        opt["dropout"] = self.net.dropout                  # -init_from: the file's dropout
        self.saver(path, dict(
            model_type=self.net.model_type, vocab_bytes=self.loader.vocab_bytes(),
            linears=self.trainer.linears(), grad_linears=self.trainer.grad_linears(),
            dropout=self.net.dropout, opt=opt, train_losses=list(self.train_losses),
            val_losses=dict(self.val_losses), i=i, epoch=epoch))

    def eval_split(self, split_index):
        """The mean loss over a split (the trainer carries on from its last state)."""
        self.say(f"evaluating loss over split index {split_index}")
        n = self.loader.split_sizes[split_index - 1]
        self.loader.reset_batch_pointer(split_index)
        batches = []
        for k in range(1, n + 1):
            batches.append(self.loader.next_batch(split_index))
        return self.trainer.evaluate(batches, lambda k: self.say(f"{k}/{n}..."))
