"""torchrnn-charrnn-train against char-rnn's own train.lua: the four fixture runs in full.

Each run of tests/fixtures/charrnn (lstm/gru/rnn 2x64, lstm 2x48 with dropout 0.5; 380
iterations, one validation) is trained again from the same input, flags and seed, and
compared with the original's log and checkpoint:

- every printed line other than the progress lines (equal or not);
- each progress line's train_loss: |ours - printed| and |ours - the checkpoint's
  full-precision train_losses[i]|, their maximum, and the first iteration above 1e-12 and
  above 1e-6; the grad/param norm field equal as printed (lines that differ are counted);
- the validation loss against the checkpoint's val_loss, and the final parameters against
  the checkpoint's (max |difference|);
- our checkpoint (written by torchrnn_py/charrnn/write.py) sampled with
  torchrnn-charrnn-sample as the fixtures' four sample files were made with sample.lua
  from the original's: how many of the four come out byte for byte.

``--perturb REL`` multiplies the initial parameters by (1 + REL) (REL = 1e-15 is a few
units in the last place) and compares that run with an unperturbed one of ours instead:
how far float64 rounding alone carries the trajectory apart.

    python benchmarks/charrnn_train_fidelity.py            # ~1-2 min on one core
    python benchmarks/charrnn_train_fidelity.py --runs lstm_2x64 --perturb 1e-15
"""
import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from torchrnn_py.charrnn import train as ctrain          # noqa: E402
from torchrnn_py.charrnn.graph import read_graph          # noqa: E402
from torchrnn_py.t7 import read_t7                        # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "charrnn"
CORPUS = ROOT / "torchrnn_py" / "corpus" / "tiny-shakespeare.txt"
RUNS = {"lstm_2x64": dict(model="lstm", rnn_size=64),
        "gru_2x64": dict(model="gru", rnn_size=64),
        "rnn_2x64": dict(model="rnn", rnn_size=64),
        "lstm_2x48_dropout0.5": dict(model="lstm", rnn_size=48, dropout=0.5)}
COMMON = dict(num_layers=2, batch_size=20, seq_length=50, learning_rate=5e-3, max_epochs=2,
              eval_val_every=380, seed=123, gpuid=-1)
SAMPLES = {"default": [], "seed7_temp0.5": ["-seed", "7", "-temperature", "0.5"],
           "argmax_ROMEO": ["-sample", "0", "-primetext", "ROMEO:"],
           "prime_The": ["-seed", "123", "-primetext", "The "]}
PROGRESS = re.compile(r"(\d+)/\d+ \(epoch [0-9.]+\), train_loss = ([0-9.]+), "
                      r"grad/param norm = (\S+), time/batch")


def train(name, work, perturb=0.0):
    """One run of ours: (lines, result, saved checkpoint fields)."""
    folder = pathlib.Path(work) / "public"
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.t7"):               # each run preprocesses, as the fixtures'
        old.unlink()
    (folder / "input.txt").write_bytes(CORPUS.read_bytes()[:200000])
    lines, saved = [], []
    write = ctrain.checkpoint_writer()

    def save(path, fields):
        saved.append((os.path.join(work, path), fields))
        write(path, fields)
    if perturb:
        init = ctrain.CharRNNNet.init_random

        def perturbed(net, generator):
            init(net, generator)
            net.params.mul_(1 + perturb)
        ctrain.CharRNNNet.init_random = perturbed
    try:
        result = _in(work, lambda: ctrain.train_charrnn(
            log=lines.append, save_checkpoint=save,
            data_dir="public", checkpoint_dir=f"cv_{name}", savefile=name,
            **COMMON, **RUNS[name]))
    finally:
        if perturb:
            ctrain.CharRNNNet.init_random = init
    return lines, result, saved


def _in(folder, body):
    here = os.getcwd()
    os.chdir(folder)
    try:
        return body()
    finally:
        os.chdir(here)


def progress(lines):
    """{iteration: (printed loss text, printed norm text)} of the progress lines."""
    out = {}
    for line in lines:
        match = PROGRESS.match(line)
        if match:
            out[int(match.group(1))] = (match.group(2), match.group(3))
    return out


def compare(ours, reference, exact=None):
    """Loss and norm statistics of ``ours`` (lines, losses) against ``reference``."""
    (lines, losses), (ref_lines, _) = ours, reference
    mine, theirs = progress(lines), progress(ref_lines)
    printed = [abs(float(mine[i][0]) - float(theirs[i][0])) for i in theirs]
    full = [abs(a - b) for a, b in zip(losses, exact)] if exact is not None else printed
    first = {limit: next((i for i, d in enumerate(full, 1) if d > limit), None)
             for limit in (1e-12, 1e-6)}
    others = [_plain(x) for x in lines if not PROGRESS.match(x)]
    ref_others = [_plain(x) for x in ref_lines if not PROGRESS.match(x)]
    return {"iterations": len(theirs), "max_printed_loss_diff": max(printed),
            "max_full_precision_loss_diff": max(full),
            "lines_within_1e-6": sum(d <= 1e-6 for d in printed),
            "first_above_1e-12": first[1e-12], "first_above_1e-6": first[1e-6],
            "norms_differing": sum(mine[i][1] != theirs[i][1] for i in theirs),
            "other_lines_equal": others == ref_others}


def _plain(line):
    return line.replace("data/public", "public").rstrip("\n")


def against_original(name, work):
    lines, result, saved = train(name, work)
    root = read_t7(FIXTURES / f"{name}.t7")
    ref_lines = (FIXTURES / f"{name}.train.log").read_text().split("\n")[:-1]
    exact = [root["train_losses"][i] for i in range(1, len(root["train_losses"]) + 1)]
    stats = compare((lines, result["train_losses"]), (ref_lines, exact), exact)
    graph = read_graph(root["protos"]["rnn"], sys.exit)
    flat = torch.cat([torch.cat([n.module["weight"].flatten(), n.module["bias"]])
                      for n in graph.linears()]).double()
    stats["val_loss"] = result["val_losses"][380]
    stats["val_loss_diff"] = abs(result["val_losses"][380] - root["val_loss"])
    stats["final_param_max_diff"] = float((result["net"].params - flat).abs().max())
    stats["checkpoints"] = len(saved)
    stats["samples_byte_identical"] = sum(
        sample(saved[-1][0], flags) == (FIXTURES / f"{name}.{kind}.txt").read_bytes()
        for kind, flags in SAMPLES.items())
    return stats


def sample(path, flags):
    """torchrnn-charrnn-sample's stdout for a checkpoint (as the fixtures' were made)."""
    command = [sys.executable, "-m", "torchrnn_py", "charrnn-sample", path, "-gpuid", "-1",
               "-verbose", "0", "-length", "300"] + flags
    return subprocess.run(command, capture_output=True, check=True, cwd=ROOT).stdout


def against_perturbed(name, work, perturb):
    lines, result, _ = train(name, work)
    lines2, result2, _ = train(name, work, perturb)
    stats = compare((lines2, result2["train_losses"]), (lines, result["train_losses"]),
                    result["train_losses"])
    stats["val_loss_diff"] = abs(result["val_losses"][380] - result2["val_losses"][380])
    return stats


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default=",".join(RUNS), help="comma-separated names")
    parser.add_argument("--perturb", type=float, default=0.0,
                        help="compare ours with ours started (1 + REL) x the parameters")
    args = parser.parse_args(argv)
    report = {}
    for name in args.runs.split(","):
        with tempfile.TemporaryDirectory() as work:
            report[name] = against_perturbed(name, work, args.perturb) if args.perturb \
                else against_original(name, work)
        print(name, json.dumps(report[name]), flush=True)
    worst = max(r["max_printed_loss_diff"] for r in report.values())
    print(f"max |printed train_loss difference| over all runs and lines: {worst:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
