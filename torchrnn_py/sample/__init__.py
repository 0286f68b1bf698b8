"""sample.lua: generate text from a checkpoint.

Same flags, defaults and output as ``th sample.lua`` (docs/compatibility.md, sample): the
sampled text and a newline on stdout; ``-verbose 1`` adds the backend line and the seeding
line. New flags, whose defaults keep the original behaviour:

- ``-seed N``: the text the original gives after ``torch.manualSeed(N)`` (-1: from the OS);
- ``-stream 1``: write each character as it is made, flushed;
- ``-output_file PATH``: write there instead of stdout (no trailing newline), any length in
  bounded memory; with a byte vocabulary (``[N]`` tokens, ``preprocess --encoding bytes``)
  or a BinToUTF8 table (``-bcl_table T.bcl``) the file gets the raw bytes;
- ``-num_samples K``: K independent samples computed as one batch, written one after
  another (stdout: each after a line ``--- sample k of K ---`` when K > 1) or to PATH with
  the index inserted (``out.txt`` -> ``out_1.txt``, ...).

Each file written is named on stderr (``wrote PATH``) unless ``-verbose 0`` is given
explicitly; NaN and infinity are refused for every numeric flag; SIGTERM cleans up as Ctrl-C.
"""
import dataclasses
import os

from .. import bintoutf8
from ..checkpoint import load_checkpoint
from ..cmdline import make_printers, require_finite, resolve_keyword_options
from ..device import PRECISION_HELP, choose_device, physical_memory, use_precision
from ..errors import TorchRNNError
from ..fileio import check_distinct, check_name_stem, check_output_path, check_stdout_distinct
from ..rng import TorchGenerator
from ..sample_output import FLUSH_EVERY, check_files_open, sample_sinks, write_samples
from ..sampling import NonFiniteScores, check_finite_model, sample_ids

PROG = "torchrnn-sample"

OPTIONS = [
    ("checkpoint", "cv/checkpoint_4000.t7", "checkpoint (.t7) written by train"),
    ("length", 2000, "number of tokens to produce, the start text included"),
    ("start_text", "", "text to run through the model first (the output begins with it)"),
    ("sample", 1, "1 = sample from the distribution, 0 = take the most likely token"),
    ("temperature", 1, "softmax temperature (higher = more random)"),
    ("gpu", 0, "CUDA device number; -1 = CPU"),
    ("gpu_backend", "cuda", "cuda (opencl is not available: falls back to the CPU)"),
    ("verbose", 0, "1 = also print the backend and how the sampler was seeded; "
                   "an explicit 0 also silences the 'wrote FILE' lines"),
    ("seed", -1, "new: seed as torch.manualSeed(seed) would (-1 = from the OS)"),
    ("stream", 0, "new: 1 = write each character as soon as it is made"),
    ("output_file", "", "new: write the sample to this file (raw bytes for byte vocabularies)"),
    ("num_samples", 1, "new: number of independent samples, computed as one batch (stdout: "
                       "each after a line '--- sample k of K ---' when K > 1)"),
    ("bcl_table", "", "new: BinToUTF8 .bcl table: -output_file gets the decoded bytes"),
    ("precision", "fp32", PRECISION_HELP),
]
DEFAULTS = {name: default for name, default, _ in OPTIONS}
NUMERIC = [name for name, default, _ in OPTIONS if isinstance(default, (int, float))]


@dataclasses.dataclass
class Samples:
    """What :func:`sample` made: ``texts``, the ``num_samples`` texts in order when they were
    kept (empty when they were written out); ``paths``, the files written (empty if none)."""
    texts: list
    paths: list


def sample(*, out=None, log=None, warn=None, progress=None, on_written=None, **options):
    """Run sample.lua with ``options`` (its flags as keyword arguments) -> :class:`Samples`:
    the texts, or, with ``output_file`` or a binary stream ``out`` (the command's stdout),
    written there. ``verbose=1``: the original's diagnostic lines to stdout (or ``log``);
    ``warn`` gets warnings; ``progress(done, total)`` tokens made; ``on_written(path)``
    each output file once it is complete.
    """
    opt = _resolve(options)
    _check_stdout(opt, out, log)
    # sample.lua prints the backend line at -verbose 1, the seeding line at any -verbose > 0
    chatty = opt["verbose"] == 1
    say, warn = make_printers(chatty, log if chatty else None, warn, PROG)
    seeding_say, _ = make_printers(opt["verbose"] > 0,
                                   log if opt["verbose"] > 0 else None, warn, PROG)
    checkpoint = load_checkpoint(opt["checkpoint"])
    model = checkpoint.model
    try:                                  # before any output is opened (-stream truncates)
        check_finite_model(model)
    except NonFiniteScores as err:
        raise NonFiniteScores(f"{opt['checkpoint']}: {err}") from None
    K = int(opt["num_samples"])
    check_streams_fit(model, K, int(opt["length"]), physical_memory(), _kept(opt, out, K))
    device = choose_device(opt, say, warn)
    model.to(device).eval()
    use_precision(model, opt["precision"], device, warn)
    paths = _output_files(opt, K)
    token_bytes, raw = _token_bytes(model, opt)
    if opt["start_text"]:
        start_tokens = len(model.encode(opt["start_text"]))   # unknown characters: an error
        if start_tokens > opt["length"]:
            raise TorchRNNError(f"-length {opt['length']} is shorter than the start text "
                                f"({start_tokens} tokens); the output includes the start text")
    if opt["bcl_table"] and not paths:
        warn("-bcl_table only applies with -output_file (the bytes go to the file); "
             "printing the text")
    generator = TorchGenerator(opt["seed"] if opt["seed"] >= 0 else None)
    if opt["start_text"]:
        seeding_say('Seeding with: "' + opt["start_text"] + '"')
    else:
        seeding_say("Seeding with uniform probabilities")
    steps = sample_ids(model, int(opt["length"]), opt["start_text"], bool(opt["sample"]),
                       float(opt["temperature"]), generator, K)
    try:
        if not paths and out is None:
            return Samples(texts=_collect(steps, token_bytes, K), paths=[])
        sinks = sample_sinks(paths, out, K, bool(opt["stream"]), newline=not paths and not raw)
        dropped = write_samples(steps, token_bytes, sinks, opt, progress)
    except NonFiniteScores as err:
        raise NonFiniteScores(f"{opt['checkpoint']}: {err}") from None
    if on_written is not None:
        for path in paths:
            on_written(path)
    if raw and dropped:
        warn(f"{dropped} sampled character(s) are not in {opt['bcl_table']} and were left "
             f"out of the bytes (e.g. newlines)")
    return Samples(texts=[], paths=paths)


def stream_bytes(model, length, kept="written"):
    """About how many bytes one of ``-num_samples`` streams takes: its recurrent state and
    gates in float64, its scores and probabilities, and its tokens until they are out:
    ``kept`` "written" (stdout, files) holds at most FLUSH_EVERY of them, "spooled"
    (samples 2..K on stdout) as many plus 16 bytes per FLUSH_EVERY in the spool's index,
    "collected" (the texts returned) every one."""
    state = sum(rnn.weight.shape[1] + 2 * rnn.hidden_dim for rnn in model.rnns)
    tokens = 8 * (length if kept == "collected" else min(length, FLUSH_EVERY))
    if kept == "spooled":
        tokens += 16 * -(-length // FLUSH_EVERY)
    return 8 * (state + 3 * model.vocab_size) + tokens + 512


def check_streams_fit(model, num_samples, length, memory, kept="written"):
    """Refuse, before anything is allocated, a ``-num_samples`` whose streams (kept as
    :func:`stream_bytes` says) would need more than half of the machine's ``memory``
    (bytes; None: not known, not checked)."""
    needed = num_samples * stream_bytes(model, length, kept)
    if memory is not None and needed > memory // 2:
        raise TorchRNNError(
            f"-num_samples {num_samples} needs about {needed / 2 ** 30:,.1f} GiB for its "
            f"streams (-length {length}), more than half of this machine's "
            f"{memory / 2 ** 30:,.1f} GiB of memory; sample fewer at a time")


def _check_stdout(opt, out, log):
    """Refuse a stdout that is one of the inputs (``1<> cp.t7``) when anything goes there:
    the samples to ``out`` (the command's stdout), or the -verbose lines (to ``log``, which
    the command sends to stdout too, or printed)."""
    inputs = {"checkpoint": opt["checkpoint"], "BinToUTF8_table": opt["bcl_table"]}
    if out is not None and (not opt["output_file"] or opt["verbose"] > 0):
        check_stdout_distinct(out, **inputs)
    if opt["verbose"] > 0 and log is None:
        check_stdout_distinct(**inputs)


def _kept(opt, out, K):
    """How the tokens wait to be written (see :func:`stream_bytes`)."""
    if opt["output_file"]:
        return "written"
    if out is None:
        return "collected"
    return "spooled" if K > 1 else "written"


def _collect(steps, token_bytes, K):
    """The K samples as texts (the library call without a place to write them)."""
    pieces = [[] for _ in range(K)]
    for ids in steps:
        for k, token in enumerate(ids.tolist()):
            pieces[k].append(token_bytes[token])
    return [b"".join(p).decode("utf-8", "surrogateescape") for p in pieces]


def _resolve(options):
    opt = resolve_keyword_options(options, DEFAULTS)
    require_finite(opt, NUMERIC)
    if not opt["checkpoint"]:
        raise TorchRNNError("no checkpoint given (-checkpoint FILE.t7)")
    if opt["length"] < 1 or int(opt["length"]) != opt["length"]:
        raise TorchRNNError(f"-length must be a positive integer, got {opt['length']}")
    if not opt["temperature"] > 0:
        raise TorchRNNError(f"-temperature must be above 0, got {opt['temperature']}")
    if opt["num_samples"] < 1 or int(opt["num_samples"]) != opt["num_samples"]:
        raise TorchRNNError(f"-num_samples must be a positive integer, got {opt['num_samples']}")
    return opt


def _token_bytes(model, opt):
    """The bytes written for each 1-based token id (a list indexed by id), and whether they
    are raw bytes (a byte vocabulary or a BinToUTF8 table going to a file) or UTF-8 text."""
    vocab = model.vocab
    ids = range(1, len(vocab) + 1)
    if opt["output_file"] and opt["bcl_table"]:
        table = bintoutf8.read_table(opt["bcl_table"])
        return [b""] + [bintoutf8.decode_text(vocab.idx_to_token[i], "bcl", table, "skip")[0]
                        for i in ids], True
    if opt["output_file"] and vocab.is_bytes:
        return [b""] + [vocab.decode_bytes([i]) for i in ids], True
    return [b""] + [vocab.idx_to_token[i].encode("utf-8", "surrogateescape") for i in ids], False


def _output_files(opt, K):
    """The files the K samples go to (:func:`_output_paths`), checked before any is opened:
    with K > 1 PATH must be a file name they can be named after, and they must fit under
    the open-file limit; none may be an input."""
    paths = _output_paths(opt["output_file"], K)
    if len(paths) > 1:
        check_name_stem(opt["output_file"], f"the files of -num_samples {K} ({paths[0]} "
                                            f"to {paths[-1]})")
        check_files_open(paths)
    for path in paths:
        check_output_path(path, "output file")
        check_distinct(checkpoint=opt["checkpoint"], BinToUTF8_table=opt["bcl_table"],
                       output_file=path)
    return paths


def _output_paths(output_file, K):
    """Where each of the K samples goes: PATH, or PATH with _1, _2, ... before its extension."""
    if not output_file:
        return []
    if K == 1:
        return [output_file]
    stem, ext = os.path.splitext(output_file)
    return [f"{stem}_{k}{ext}" for k in range(1, K + 1)]
