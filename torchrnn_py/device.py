"""Which device a command runs on, and its CUDA arithmetic (``-gpu``, ``-gpu_backend``,
``-precision``).

``choose_device`` turns ``-gpu``/``-gpu_backend`` into a torch.device and prints the
original's mode line (on CUDA it also sets IEEE float32 unless ``-precision`` opts out);
under torchrun (torchrnn_py/distributed.py) each process takes the GPU of its local rank.
"""
import os

import torch

from .errors import TorchRNNError


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


def host_to_device(tensor, device):
    """A host tensor on ``device``. To a GPU it crosses from pinned memory without the host
    waiting: the copy is queued on the stream, and torch's pinned-memory cache keeps the
    block until the copy is done. Elsewhere a plain ``.to``."""
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def physical_memory():
    """Bytes of physical memory, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
