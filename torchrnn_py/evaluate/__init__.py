"""eval.lua: the loss of a checkpoint on one split of its dataset.

Same flags and lines as ``th eval.lua`` (docs/compatibility.md, eval): the data loader is
rebuilt from the checkpoint's own ``opt`` (input_h5, batch_size, seq_length); one line per
batch, then ``<split> loss = %f``. New: ``-input_h5``/``-input_json`` override the paths
stored in the checkpoint, which often name files on someone else's machine; data whose
vocabulary is a subset of the model's is evaluated with its ids mapped to the model's by
token.
"""
import os

import torch

from ..checkpoint import load_checkpoint
from ..cmdline import make_printers, require_finite, resolve_keyword_options
from ..criterion import PendingLoss
from ..data import SPLITS, DataLoader
from ..device import PRECISION_HELP, choose_device, use_precision
from ..errors import TorchRNNError
from ..fileio import check_stdout_distinct
from ..vocab import model_token_map, read_vocab, token_map_message

PROG = "torchrnn-eval"

OPTIONS = [
    ("checkpoint", "", "checkpoint (.t7) written by train"),
    ("split", "val", "train, val or test"),
    ("gpu", 0, "CUDA device number; -1 = CPU"),
    ("gpu_backend", "cuda", "cuda (opencl is not available: falls back to the CPU)"),
    ("input_h5", "", "new: the HDF5 data (default: the checkpoint's opt.input_h5)"),
    ("input_json", "", "new: the JSON vocabulary, checked against the model's"),
    ("batch_size", 0, "new: override the checkpoint's opt.batch_size (0 = keep it)"),
    ("seq_length", 0, "new: override the checkpoint's opt.seq_length (0 = keep it)"),
    ("precision", "fp32", PRECISION_HELP),
]
DEFAULTS = {name: default for name, default, _ in OPTIONS}


def evaluate(*, verbose=False, log=None, warn=None, **options):
    """Run eval.lua with ``options`` (its flags as keyword arguments); returns the mean
    loss over every batch of the split (the value eval.lua prints)."""
    opt = resolve_keyword_options(options, DEFAULTS)
    require_finite(opt, ["gpu", "batch_size", "seq_length"])
    if opt["split"] not in SPLITS:
        raise TorchRNNError(f"-split must be train, val or test, got {opt['split']!r}")
    if not opt["checkpoint"]:
        raise TorchRNNError("no checkpoint given (-checkpoint FILE.t7)")
    say, warn = make_printers(verbose, log, warn, PROG)
    checkpoint = load_checkpoint(opt["checkpoint"])
    model = checkpoint.model
    saved = checkpoint.opt
    if not isinstance(saved, dict):
        saved = {}
    input_h5 = opt["input_h5"] or saved.get("input_h5")
    if not input_h5:
        raise TorchRNNError(f"{opt['checkpoint']}: the checkpoint does not name its data "
                            f"(no opt.input_h5): give -input_h5")
    if not opt["input_h5"] and not os.path.exists(input_h5):
        raise TorchRNNError(f"{opt['checkpoint']}: its data file {input_h5} (opt.input_h5) "
                            f"is not here; give -input_h5 (and -input_json) for this machine")
    sizes = {}
    for name in ("batch_size", "seq_length"):
        if opt[name]:
            if not isinstance(opt[name], int) or opt[name] < 1:
                raise TorchRNNError(f"-{name} must be a positive integer, got {opt[name]}")
            sizes[name] = opt[name]
        else:
            sizes[name] = saved.get(name)
            if not isinstance(sizes[name], int) or sizes[name] < 1:
                raise TorchRNNError(f"{opt['checkpoint']}: opt.{name} is missing or invalid; "
                                    f"give -{name}")
    vocab_size, token_map = model.vocab_size, None
    input_json = opt["input_json"] or _vocabulary_beside(input_h5, opt["input_h5"], saved)
    if verbose and log is None:              # its lines are printed: not into an input
        check_stdout_distinct(checkpoint=opt["checkpoint"], input_h5=input_h5,
                              input_json=input_json)
    device = choose_device(opt, say, warn)
    model.to(device)
    use_precision(model, opt["precision"], device, warn)
    if input_json:
        vocab = read_vocab(input_json)
        token_map = model_token_map(vocab, model.vocab, input_json, opt["checkpoint"])
        if token_map is not None:               # a subset of the model's tokens: exact
            vocab_size = len(vocab)
            warn(token_map_message(token_map, model.vocab_size))
    loader = DataLoader(input_h5, sizes["batch_size"], sizes["seq_length"],
                        vocab_size=vocab_size, log=say, token_map=token_map).keep_on(device)
    if not input_json:
        warn(f"no -input_json, and no vocabulary beside {input_h5}: its ids are taken to be "
             f"the model's, unchecked")
    split = opt["split"]
    return evaluate_split(model, loader, split, device,
                          on_batch=lambda j, n: say("%s batch %d / %d" % (split, j, n)))


def _vocabulary_beside(input_h5, given_h5, saved):
    """The JSON vocabulary that goes with the data when -input_json is not given: the
    checkpoint's opt.input_json for its own data, else ``X.json`` beside ``X.h5``."""
    if not given_h5 and isinstance(saved.get("input_json"), str) \
            and os.path.isfile(saved["input_json"]):
        return saved["input_json"]
    twin = os.path.splitext(input_h5)[0] + ".json"
    return twin if os.path.isfile(twin) else None


@torch.no_grad()
def evaluate_split(model, loader, split, device, on_batch=None):
    """Mean loss over every batch of ``split``, in evaluation mode, from zero states
    (train.lua's validation and eval.lua). Leaves the states reset. A batch's loss is read
    once the next batch is queued (on a GPU the host then waits for no whole batch)."""
    model.eval()
    model.reset_states()
    loader.reset(split)
    total, waiting = 0.0, None
    count = loader.split_sizes[split]
    for j in range(count):
        if on_batch is not None:
            on_batch(j + 1, count)
        x, y = loader.next_batch(split)
        loss = PendingLoss(model(x.to(device)), y.to(device))
        if waiting is not None:
            total += waiting.value()
        waiting = loss
    if waiting is not None:
        total += waiting.value()
    model.reset_states()
    return total / count
