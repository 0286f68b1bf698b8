"""What the commands share at run time: the device, printing, and the loss as torch-rnn
reports it.

``choose_device`` turns ``-gpu``/``-gpu_backend`` into a torch.device and prints the
original's mode line (on CUDA it also sets IEEE float32 unless ``-precision`` opts out); ``make_printers`` gives the Lua-style ``print`` the commands use;
``torch7_loss_value`` and ``evaluate_split`` compute the losses train.lua and eval.lua print.
"""
import sys

import numpy as np
import torch

from . import distributed
from .errors import TorchRNNError
from .model import to_index


def choose_device(opt, say, warn, context=None):
    """torch.device for ``-gpu``/``-gpu_backend``; prints train.lua's mode line.

    A GPU that is not there, or the OpenCL backend, is one line on stderr and the CPU.
    Under torchrun each process takes the GPU of its local rank (and there must be one).
    """
    gpu = int(opt["gpu"])
    if context is not None and context.active and gpu >= 0:
        gpu = context.local_rank
    if gpu >= 0 and opt["gpu_backend"] == "opencl":
        warn("the OpenCL backend (cltorch) is not available in torchrnn_py; "
             "falling back to the CPU")
    elif gpu >= 0:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if gpu < count:
            torch.cuda.set_device(gpu)
            apply_cuda_precision(opt.get("precision", "fp32"))
            say(f"Running with CUDA on GPU {gpu}")
            return torch.device("cuda", gpu)
        found = f"{count} CUDA device(s)" if count else "no CUDA device"
        if context is not None and context.active and count:
            raise TorchRNNError(f"process {context.rank} (local rank {gpu}) has no GPU of its "
                                f"own: this machine has {found}; start at most {count} "
                                f"processes per machine (torchrun --nproc_per_node)")
        warn(f"GPU {gpu} was asked for (-gpu {gpu}) but this machine has {found}; "
             f"falling back to the CPU (use -gpu -1 to ask for the CPU)")
    say("Running in CPU mode")
    return torch.device("cpu")


PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
PRECISION_HELP = ("new: arithmetic on CUDA: fp32 = IEEE float32 (the CPU's results); tf32 = "
                  "TensorFloat-32 products (Ampere+); bf16/fp16 = autocast the forward pass to "
                  "bfloat16/float16 (fp16: sampling and evaluation only); no effect on the CPU")


def cuda_precision_settings(precision):
    """What ``-precision`` sets on CUDA: the fp32 precision of cuDNN's RNNs (and convs, so
    that torch's legacy TF32 flag stays readable) and of matrix products, and the dtype the
    forward pass is autocast to (None: float32 throughout)."""
    if precision not in PRECISIONS:
        raise TorchRNNError(f"-precision must be one of {', '.join(PRECISIONS)}, "
                            f"got {precision!r}")
    fp32 = "tf32" if precision == "tf32" else "ieee"
    autocast = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return {"rnn": fp32, "conv": fp32, "matmul": fp32, "autocast": autocast}


def apply_cuda_precision(precision):
    """Set torch's CUDA fp32 flags for ``precision``; returns its autocast dtype or None.
    torch 2.13 defaults cuDNN's RNNs to TF32, ~1e-3 off the CPU: fp32 sets IEEE."""
    settings = cuda_precision_settings(precision)
    torch.backends.cudnn.rnn.fp32_precision = settings["rnn"]
    torch.backends.cudnn.conv.fp32_precision = settings["conv"]
    torch.backends.cuda.matmul.fp32_precision = settings["matmul"]
    return settings["autocast"]


def use_precision(model, precision, device, warn):
    """Apply ``-precision`` to ``model`` on ``device``: on CUDA the flags and the forward
    pass's autocast dtype; on the CPU (always IEEE float32) a warning if one was asked."""
    settings = cuda_precision_settings(precision)
    if device.type != "cuda":
        if precision != "fp32":
            warn(f"-precision {precision} only changes CUDA arithmetic; the CPU computes "
                 f"in IEEE float32")
        model.autocast_dtype = None
        return
    apply_cuda_precision(precision)
    model.autocast_dtype = settings["autocast"]


def torch7_loss_value(scores, targets, context=None):
    """The loss value torch-rnn prints: its CrossEntropyCriterion's float arithmetic.

    THNN's LogSoftMax works in double per row; ClassNLLCriterion then sums the N*T
    negative log-probabilities one by one in float32 and divides by N*T. The running
    float32 sum moves the printed value by ~1e-6 against an exact mean, so the printed
    losses and histories are computed this way (the gradients do not depend on it).
    With a distributed ``context`` the rows of every process are gathered first, so the
    value is the whole batch's, computed as one process would.
    """
    with torch.no_grad():
        logp = (scores.detach().double().log_softmax(-1)
                .gather(2, to_index(targets).unsqueeze(2)).float())      # (N, T, 1)
        if context is not None:
            logp = distributed.gather_rows(context, logp)
        logp = logp.cpu().numpy().reshape(-1)
    total = np.cumsum(-logp, dtype=np.float32)[-1]
    return float(total / np.float32(logp.shape[0]))


def lua_number(value):
    """A number as Lua's print shows it (``%.14g``)."""
    return "%.14g" % value


def warn_on_stderr(prog):
    """A ``warn`` callback printing ``prog: warning: ...`` on stderr."""
    return lambda msg: print(f"{prog}: warning: {msg}", file=sys.stderr, flush=True)


def make_printers(verbose, log=None, warn=None, prog="torchrnn"):
    """``say(*parts)`` prints like Lua's print (parts joined by tabs) to stdout, or hands
    the line to ``log``; ``warn(msg)`` goes to stderr or ``warn``. Silent unless verbose."""
    def say(*parts):
        line = "\t".join(str(p) for p in parts)
        if log is not None:
            log(line)
        elif verbose:
            print(line, flush=True)

    if warn is None:
        warn = warn_on_stderr(prog) if verbose else (lambda msg: None)
    return say, warn


@torch.no_grad()
def evaluate_split(model, loader, split, device, on_batch=None):
    """Mean loss over every batch of ``split``, in evaluation mode, from zero states
    (train.lua's validation and eval.lua). Leaves the states reset."""
    model.eval()
    model.reset_states()
    loader.reset(split)
    total = 0.0
    count = loader.split_sizes[split]
    for j in range(count):
        if on_batch is not None:
            on_batch(j + 1, count)
        x, y = loader.next_batch(split)
        total += torch7_loss_value(model(x.to(device)), y.to(device))
    model.reset_states()
    return total / count
