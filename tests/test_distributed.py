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


def _wait_for_slow_rank_0(rank, init_file, result_file):
    """One process of test_waiting_for_rank_0_outlasts_the_main_groups_timeout."""
    import datetime
    import time
    import torch.distributed as dist
    from torchrnn_py import distributed
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=2, timeout=datetime.timedelta(seconds=1))
    context = distributed.setup(use_cuda=False)
    if rank == 0:
        time.sleep(3)                 # a "validation" three times the main group's timeout
    objects = distributed.gather_objects(context, rank)
    flag = distributed.any_process(context, rank == 0)
    distributed.barrier(context)
    with open(f"{result_file}.{rank}", "w") as f:
        f.write(f"{objects} {flag}")
    distributed.teardown(context)


def test_waiting_for_rank_0_outlasts_the_main_groups_timeout(tmp_path):
    """Rank 1 waits on rank 0 longer than the main group's timeout (1 s here, NCCL's 30 min
    in a real job) and still gets its answers. Slow (two spawned processes import torch,
    5-15 s), kept for the torchrun abort it guards against."""
    import multiprocessing
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_wait_for_slow_rank_0,
                         args=(rank, tmp_path / "init", tmp_path / "out")) for rank in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    for rank in (0, 1):
        assert (tmp_path / f"out.{rank}").read_text() == "[0, 1] True"
