"""The training loss read one step late (what a GPU run does, forced here on the CPU): the
host reads iteration i's loss only once step i+1 is queued, and every printed line, CSV
row, progress call, checkpoint, interrupt and error is what reading it at once gives."""
import csv
import os
import signal

import pytest
import torch

from conftest import GOLDEN, make_tiny_h5
from torchrnn_py import checkpoint as ckpt
from torchrnn_py import criterion
from torchrnn_py import train as train_mod
from torchrnn_py.cli import train as train_cli

JSON = GOLDEN / "shakespeare200k.json"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """7 training batches of (2, 50) per epoch."""
    return str(make_tiny_h5(tmp_path_factory.mktemp("lag_data")))


def options(tiny, folder, **overrides):
    """2 epochs of 7 iterations, a decay (and Adam reset) at 7, checkpoints every 5."""
    opt = dict(input_h5=tiny, input_json=str(JSON), batch_size=2, seq_length=50,
               rnn_size=8, wordvec_size=4, num_layers=2, max_epochs=2, gpu=-1, seed=3,
               dropout=0.2, checkpoint_every=5, lr_decay_every=1, lr_decay_factor=0.5,
               print_every=1, checkpoint_name=str(folder / "cp"),
               log_csv=str(folder / "log.csv"))
    opt.update(overrides)
    return opt


def lagged(monkeypatch, on):
    monkeypatch.setattr(train_mod, "loss_lag", lambda opt, device: on)


def run(tiny, folder, **overrides):
    lines, calls = [], []
    result = train_mod.train(log=lines.append, progress=calls.append,
                             **options(tiny, folder, **overrides))
    return result, lines, calls


def without_seconds(rows, folder=None, as_folder=None):
    """The rows less their clocks (and with checkpoint paths in ``folder`` moved)."""
    def moved(value):
        return value.replace(str(folder), str(as_folder)) if folder and value else value
    return [{k: moved(v) if k == "checkpoint" else v for k, v in row.items() if k != "seconds"}
            for row in rows]


def test_lagged_reads_give_the_same_lines_rows_progress_and_checkpoints(tiny, tmp_path,
                                                                         monkeypatch):
    lagged(monkeypatch, False)
    at_once, at_once_lines, at_once_calls = run(tiny, tmp_path / "at_once")
    lagged(monkeypatch, True)
    late, late_lines, late_calls = run(tiny, tmp_path / "late")
    assert late_lines == at_once_lines and len(late_lines) > 14
    assert late["train_loss_history"] == at_once["train_loss_history"]
    assert late["val_loss_history_it"] == at_once["val_loss_history_it"] == [5, 10, 14]
    assert without_seconds(late_calls) == without_seconds(at_once_calls, tmp_path / "at_once",
                                                          tmp_path / "late")
    assert [c["learning_rate"] for c in late_calls[5:8]] == [2e-3, 1e-3, 1e-3]  # decay at 7
    with open(tmp_path / "late" / "log.csv") as f, open(tmp_path / "at_once" / "log.csv") as g:
        assert without_seconds(csv.DictReader(f)) == without_seconds(csv.DictReader(g))
    for name in ("cp_5.t7", "cp_10.t7", "cp_14.t7"):
        a = ckpt.load_checkpoint(tmp_path / "late" / name).model.state_dict()
        b = ckpt.load_checkpoint(tmp_path / "at_once" / name).model.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_lagged_loss_is_read_after_the_next_step_is_queued(tiny, tmp_path, monkeypatch):
    events = []
    launch, finish = train_mod._Run.launch, train_mod._Run.finish

    def logged_launch(self, i):
        events.append(f"step {i}")
        return launch(self, i)

    def logged_finish(self, step, progress):
        events.append(f"read {step.i}")
        return finish(self, step, progress)
    monkeypatch.setattr(train_mod._Run, "launch", logged_launch)
    monkeypatch.setattr(train_mod._Run, "finish", logged_finish)
    lagged(monkeypatch, True)
    train_mod.train(**options(tiny, tmp_path, max_epochs=1, log_csv=""))
    # read at once only where it validates (5) and at the end (7)
    assert events == ["step 1", "step 2", "read 1", "step 3", "read 2", "step 4", "read 3",
                      "step 5", "read 4", "read 5", "step 6", "step 7", "read 6", "read 7"]
    events.clear()
    lagged(monkeypatch, False)
    train_mod.train(**options(tiny, tmp_path, max_epochs=1, log_csv=""))
    assert events == [e for i in range(1, 8) for e in (f"step {i}", f"read {i}")]


def test_lagged_interrupt_checkpoints_the_last_step_queued(tiny, tmp_path, monkeypatch):
    """Ctrl-C seen while iteration 11's line prints: step 12 is already queued, so the run
    stops after 12 with cp_12, and resuming it gives the uninterrupted run exactly."""
    lagged(monkeypatch, True)
    full, _, _ = run(tiny, tmp_path / "full")

    def log(line):
        if "i = 11 /" in line:
            os.kill(os.getpid(), signal.SIGINT)
    lines = []
    with pytest.raises(KeyboardInterrupt):
        train_mod.train(log=lambda line: (lines.append(line), log(line)), handle_signals=True,
                        **options(tiny, tmp_path / "run"))
    assert "i = 12 /" in lines[-2] and lines[-1].startswith("Interrupted after iteration 12")
    resumed = train_mod.train(resume_from=str(tmp_path / "run" / "cp_12.t7"),
                              checkpoint_name=str(tmp_path / "resumed" / "cp"), log_csv="")
    assert resumed["train_loss_history"] == full["train_loss_history"]
    a, b = resumed["model"].state_dict(), full["model"].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a if not k.endswith("num_batches_tracked"))


@pytest.mark.parametrize("on", [False, True])
def test_lagged_divergence_prints_and_says_what_reading_at_once_does(tiny, tmp_path,
                                                                     monkeypatch, capsys, on):
    lagged(monkeypatch, on)
    flags = []
    for key, value in options(tiny, tmp_path, learning_rate=1e38, seed=1).items():
        flags += ["-" + key, str(value)]
    assert train_cli.main(flags) == 1
    out, err = capsys.readouterr()
    assert err.strip().splitlines()[-1].endswith(
        "the training loss became nan at iteration 2: training diverged and stopped (no "
        "checkpoint of it was written); try a lower -learning_rate (now 1e+38) or -grad_clip")
    assert [line for line in out.splitlines() if line.startswith("Epoch")] == \
        [next(line for line in out.splitlines() if "i = 1 /" in line)]
    assert not list(tmp_path.glob("*.t7"))


def test_pending_loss_is_torch7s_float32_sum():
    scores = torch.randn(3, 5, 7, dtype=torch.float64)
    targets = torch.randint(1, 8, (3, 5))
    pending = criterion.PendingLoss(scores, targets)
    logp = scores.log_softmax(-1).gather(2, (targets - 1).unsqueeze(2)).float().view(-1)
    total = torch.zeros((), dtype=torch.float32)
    for v in -logp:                                  # one by one, in float32
        total = total + v
    assert pending.value() == float(total / 15) == criterion.torch7_loss_value(scores, targets)
