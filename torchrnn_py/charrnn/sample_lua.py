"""char-rnn's ``th sample.lua MODEL.t7 [flags]`` as a function: its options in, its stdout's
bytes (or -output_file) out, byte for byte.

stdout is sample.lua's: with ``-verbose 1`` its diagnostic lines (Lua's ``print``: each ends
in a tab), the primetext echoed, ``length`` sampled bytes (raw, not decoded) and a newline.
The draws are torchrnn_py/charrnn/sampling.py's. New options, whose defaults keep the
original output: ``output_file`` (the primetext and the sample, raw bytes without the
newline, written atomically) and ``stream`` (each byte written as it is made). Everything is
checked before the first byte is written. The command line is torchrnn_py/cli/charrnn_sample.py.
"""
import os

import torch

from ..cmdline import lua_number, require_finite
from ..device import apply_cuda_precision
from ..errors import TorchRNNError
from ..fileio import check_distinct, check_output_path, check_stdout_distinct
from ..rng import TorchGenerator
from ..sample_output import sample_sinks, write_samples
from ..sampling import NonFiniteScores, check_finite_model
from .checkpoint import load_charrnn
from .sampling import check_options, sample_ids

PROG = "torchrnn-charrnn-sample"
ARGUMENT = ("model", "model checkpoint to use for sampling")
OPTIONS = [
    ("seed", 123, "random number generator's seed"),
    ("sample", 1, "0 to use max at each timestep, 1 to sample at each timestep"),
    ("primetext", "", "used as a prompt to \"seed\" the state of the LSTM using a given "
                      "sequence, before we sample."),
    ("length", 2000, "number of characters to sample"),
    ("temperature", 1, "temperature of sampling"),
    ("gpuid", 0, "which gpu to use. -1 = use CPU"),
    ("opencl", 0, "use OpenCL (instead of CUDA): not available, falls back on the CPU"),
    ("verbose", 1, "set to 0 to ONLY print the sampled text, no diagnostics"),
    ("output_file", "", "new: write the primetext and the sample (raw bytes, no trailing "
                        "newline) to this file instead of stdout"),
    ("stream", 0, "new: 1 = write each byte as soon as it is made"),
]
NUMERIC = [name for name, default, _ in OPTIONS if isinstance(default, (int, float))]


def check_numbers(opt):
    """NaN and infinity refused for every number; -seed and -gpuid integers (Torch7 would
    truncate them); -length and, when sampling, -temperature as torchrnn-sample wants them."""
    require_finite(opt, NUMERIC)
    for name in ("seed", "gpuid"):
        if opt[name] != int(opt[name]):
            raise TorchRNNError(f"-{name} must be an integer, got {lua_number(opt[name])}")
    if opt["length"] != int(opt["length"]):
        raise TorchRNNError(f"-length must be a positive integer, got {opt['length']}")
    check_options(int(opt["length"]), opt["sample"] != 0, opt["temperature"])


def load_checked_model(path):
    """The char-rnn checkpoint's LanguageModel and model name, its weights checked finite."""
    ck = load_charrnn(path)
    try:
        check_finite_model(ck.model)
    except NonFiniteScores as err:
        raise NonFiniteScores(f"{path}: {err}") from None
    return ck.model, ck.model_type


def primetext_bytes(opt, vocab):
    """The primetext's raw bytes (as the shell passed them); each must be in the vocabulary
    (char-rnn crashes on one that is not)."""
    data = os.fsencode(opt["primetext"])
    known = set(vocab.decode_bytes(range(1, len(vocab) + 1)))
    for offset, value in enumerate(data):
        if value not in known:
            shown = repr(chr(value)) if 32 <= value < 127 else "non-printing"
            raise TorchRNNError(
                f"-primetext: byte 0x{value:02X} ({shown}) at offset {offset} is not in the "
                f"vocabulary of {opt['model']} ({len(vocab)} bytes, those of its training "
                f"text)")
    return data


def choose_backend(opt):
    """(device, lines) as sample.lua's GPU checks decide them: each line a pair (text,
    printed only with -verbose 1). With CUDA: the GPU -gpuid; without (or -opencl 1,
    which torchrnn_py lacks): sample.lua's "not found" lines and the CPU."""
    gpuid = int(opt["gpuid"])
    if gpuid >= 0 and opt["opencl"] == 0:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count:
            if gpuid >= count:
                raise TorchRNNError(f"-gpuid {gpuid}: this machine has {count} CUDA "
                                    f"device(s), numbered from 0 (-gpuid -1: the CPU)")
            return torch.device("cuda", gpuid), [
                (f"using CUDA on GPU {gpuid}...", True),
                ("Make sure that your saved checkpoint was also trained with GPU. If it was "
                 "trained with CPU use -gpuid -1 for sampling as well", True)]
        return torch.device("cpu"), [("package cunn not found!", True),
                                     ("package cutorch not found!", True),
                                     ("Falling back on CPU mode", True)]
    if gpuid >= 0 and opt["opencl"] == 1:     # sample.lua prints these two at any -verbose
        return torch.device("cpu"), [("package clnn not found!", False),
                                     ("package cltorch not found!", False),
                                     ("Falling back on CPU mode", True)]
    return torch.device("cpu"), []


def diagnostics(opt, model_name, prime, backend_lines):
    """The bytes sample.lua prints before the sample: the backend lines, then (with
    -verbose 1) the model and seeding lines; Lua's print ends each with a tab."""
    verbose = opt["verbose"] == 1
    lines = [text.encode("ascii") for text, gated in backend_lines if verbose or not gated]
    if verbose:
        lines.append(f"creating an {model_name}...".encode("utf-8", "surrogateescape"))
        lines.append(b"seeding with " + prime if prime else
                     b"missing seed text, using uniform probability over first character")
        lines.append(b"-" * 26)
    return b"".join(line + b"\t\n" for line in lines)


def run(opt, out, progress=None, on_written=None):
    """sample.lua with ``opt`` (parse_arguments' dict): every check first, then the
    diagnostics and the sample to the binary stream ``out`` (or -output_file)."""
    check_numbers(opt)
    model, model_name = load_checked_model(opt["model"])
    prime = primetext_bytes(opt, model.vocab)
    paths = [opt["output_file"]] if opt["output_file"] else []
    for path in paths:
        check_output_path(path, "output file")
        check_distinct(model=opt["model"], output_file=path)
    device, backend_lines = choose_backend(opt)
    if device.type == "cuda":
        apply_cuda_precision("fp32")           # IEEE float32 products, as on the CPU
    model.to(device)
    head = diagnostics(opt, model_name, prime, backend_lines)
    if head or not paths:                      # stdout is written: it must not be the model
        check_stdout_distinct(out, model=opt["model"])
    _write_stdout(out, head)
    steps = sample_ids(model, int(opt["length"]), prime, opt["sample"] != 0,
                       float(opt["temperature"]), TorchGenerator(int(opt["seed"])))
    vocab = model.vocab
    token_bytes = [b""] + [vocab.decode_bytes([i]) for i in range(1, len(vocab) + 1)]
    sinks = sample_sinks(paths, out, 1, bool(opt["stream"]), newline=True)
    try:
        write_samples(steps, token_bytes, sinks, {"num_samples": 1, "stream": opt["stream"],
                                           "length": len(prime) + int(opt["length"])},
               progress)
    except NonFiniteScores as err:
        raise NonFiniteScores(f"{opt['model']}: {err}") from None
    for path in paths if on_written is not None else []:
        on_written(path)


def _write_stdout(out, data):
    """Write ``data`` to the stream; a failed write (a full disk) names stdout."""
    if not data:
        return
    try:
        out.write(data)
        out.flush()
    except BrokenPipeError:
        raise
    except OSError as err:
        raise TorchRNNError(f"stdout: cannot write: {err.strerror or err}") from None
