"""Data-parallel training under torchrun (gloo, CPU): K=2 processes give the losses of one.

Each process trains N/K of the N streams of every minibatch and DistributedDataParallel
averages the gradients, so with the same seed the two runs differ only by float rounding.
Only rank 0 prints, validates and writes checkpoints.
"""
import csv
import os
import re
import subprocess
import sys

import pytest
import torch

from conftest import GOLDEN
from torchrnn_py import checkpoint as ckpt
from torchrnn_py import train as train_mod

H5 = GOLDEN / "shakespeare200k.h5"
JSON = GOLDEN / "shakespeare200k.json"
# The golden configuration, a quarter of an epoch (39 iterations), seeded dropout.
OPTIONS = dict(input_h5=str(H5), input_json=str(JSON), num_layers=2, rnn_size=64,
               wordvec_size=32, batch_size=20, seq_length=50, max_epochs=0.25, seed=7,
               dropout=0.3, gpu=-1, checkpoint_every=20, print_every=1)
ITERATIONS = 39
LOSS_LINE = re.compile(r"^Epoch \d+\.\d\d / \d+, i = (\d+) / 39, loss = (\d+\.\d{6})$")
TOLERANCE = 1e-5


def torchrun(nproc, options, cwd):
    """``python -m torch.distributed.run --standalone --nproc_per_node nproc -m
    torchrnn_py.train`` with ``options``; returns the CompletedProcess."""
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc_per_node", str(nproc), "-m", "torchrnn_py.train"]
    for key, value in options.items():
        argv += ["-" + key, str(value)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=cwd, env=env)


def read_csv(path):
    return list(csv.DictReader(open(path)))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same training run as one process (in this one) and as two under torchrun."""
    tmp = tmp_path_factory.mktemp("distributed")
    single = train_mod.train(**dict(OPTIONS, checkpoint_name=str(tmp / "k1" / "cp"),
                                    log_csv=str(tmp / "k1.csv")))
    double = torchrun(2, dict(OPTIONS, checkpoint_name=str(tmp / "k2" / "cp"),
                              log_csv=str(tmp / "k2.csv")), cwd=tmp)
    return {"dir": tmp, "single": single, "double": double}


def test_two_processes_give_the_losses_of_one(runs):
    double = runs["double"]
    assert double.returncode == 0, double.stderr[-3000:]
    single = runs["single"]["train_loss_history"]
    assert len(single) == ITERATIONS
    rows = read_csv(runs["dir"] / "k2.csv")
    assert [int(r["i"]) for r in rows] == list(range(1, ITERATIONS + 1))
    for i, (a, row) in enumerate(zip(single, rows), 1):
        assert abs(a - float(row["loss"])) < TOLERANCE, (i, a, row["loss"])
    # the printed lines too (rounded to 6 decimals)
    printed = {int(m.group(1)): float(m.group(2))
               for m in map(LOSS_LINE.match, double.stdout.splitlines()) if m}
    assert sorted(printed) == list(range(1, ITERATIONS + 1))
    for i, a in enumerate(single, 1):
        assert abs(printed[i] - a) < TOLERANCE + 5e-7, i
    # validation (done by rank 0 on the whole model) agrees as well
    val_lines = [line for line in double.stdout.splitlines() if line.startswith("val_loss = \t")]
    assert len(val_lines) == 2
    val = [float(line.split("\t")[1]) for line in val_lines]
    for a, b in zip(runs["single"]["val_loss_history"], val):
        assert abs(a - b) < TOLERANCE


def test_weights_agree_after_training(runs):
    assert runs["double"].returncode == 0
    one = ckpt.load_checkpoint(runs["dir"] / "k1" / "cp_39.t7")
    two = ckpt.load_checkpoint(runs["dir"] / "k2" / "cp_39.t7")
    for (name, a), (_, b) in zip(one["model"].state_dict().items(),
                                 two["model"].state_dict().items()):
        assert torch.allclose(a.float(), b.float(), atol=1e-4, rtol=0), name
    assert two["i"] == 39 and len(two["train_loss_history"]) == ITERATIONS
    assert two["val_loss_history_it"] == [20, 39]


def test_only_rank_0_prints_and_writes(runs):
    double = runs["double"]
    assert double.returncode == 0
    lines = double.stdout.splitlines()
    assert lines[0] == "Running in CPU mode" and lines.count("Running in CPU mode") == 1
    loss_lines = [line for line in lines if LOSS_LINE.match(line)]
    assert len(loss_lines) == ITERATIONS == len(set(loss_lines))
    assert len(lines) == 1 + ITERATIONS + 2                  # mode, losses, two val_loss
    assert "Traceback" not in double.stderr
    written = sorted(p.name for p in (runs["dir"] / "k2").iterdir())
    assert written == ["cp_20.json", "cp_20.t7", "cp_39.json", "cp_39.t7"]   # no temp files
    assert (runs["dir"] / "k2.csv").read_text().count("i,epoch") == 1


def test_batch_size_not_divisible_is_a_clear_error(tmp_path):
    result = torchrun(2, dict(OPTIONS, batch_size=5, checkpoint_name=str(tmp_path / "cv" / "cp")),
                      cwd=tmp_path)
    assert result.returncode != 0
    message = ("torchrnn-train: error: -batch_size 5 is not divisible by the 2 processes: "
               "each must get the same number of streams")
    # the same one line from each process (both write to one stderr, so the two copies may
    # run together); nothing else of ours, no traceback from our code (torchrun adds its own
    # failure report naming the failed ranks)
    assert 1 <= result.stderr.count(message) <= 2, result.stderr
    assert result.stderr.count("torchrnn-train:") == result.stderr.count(message)
    assert "torchrnn_py/" not in result.stderr
    assert not any(line.startswith("Epoch") for line in result.stdout.splitlines())
    assert not (tmp_path / "cv").exists() or not list((tmp_path / "cv").iterdir())
