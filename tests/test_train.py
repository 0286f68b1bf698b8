"""train.lua reproduced: the golden training logs of the original (seeded run and resume),
the library API, checkpoint files and JSON, the epoch/decay quirk, and bad input."""
import contextlib
import io
import json
import math
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from conftest import GOLDEN, LEGACY, make_tiny_h5
from torchrnn_py.cli import train as train_cli
from torchrnn_py import checkpoint as ckpt
from torchrnn_py import optim as optim_mod
from torchrnn_py import train as train_mod
from torchrnn_py.data import DataLoader
from torchrnn_py.model import LanguageModel
from torchrnn_py.t7 import write_t7
from torchrnn_py.vocab import write_vocab

H5 = GOLDEN / "shakespeare200k.h5"
JSON = GOLDEN / "shakespeare200k.json"
GOLDEN_FLAGS = ["-input_h5", str(H5), "-input_json", str(JSON), "-gpu", "-1",
                "-num_layers", "2", "-rnn_size", "64", "-wordvec_size", "32",
                "-batch_size", "20", "-seq_length", "50", "-print_every", "1",
                "-model_type", "lstm", "-max_epochs", "1", "-checkpoint_every", "0"]
LOSS_LINE = re.compile(r"^(Epoch (\d+\.\d\d) / (\d+), i = (\d+) / (\d+)), loss = (-?\d+\.\d{6})$")
VAL_LINE = re.compile(r"^val_loss = \t(\S+)$")


def golden_log(name):
    """The original's printed lines; `th` ends each with a tab, which ours does not."""
    lines = (GOLDEN / "train" / name).read_text().splitlines()
    return [line[:-1] if line.endswith("\t") else line for line in lines]


def run_main(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = train_cli.main(argv)
    return rc, out.getvalue().splitlines(), err.getvalue()


def losses(lines):
    """{i: (prefix, loss string)} from the loss lines."""
    found = {}
    for line in lines:
        m = LOSS_LINE.match(line)
        if m:
            found[int(m.group(4))] = (m.group(1), m.group(6))
    return found


# -- (a) the seeded golden run ----------------------------------------------------------------

@pytest.fixture(scope="module")
def seed7_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seed7")
    rc, lines, err = run_main(GOLDEN_FLAGS + ["-seed", "7", "-checkpoint_name", str(tmp / "cp")])
    return {"rc": rc, "lines": lines, "err": err, "dir": tmp, "cp": tmp / "cp"}


def test_seed7_log_matches_original(seed7_run):
    assert seed7_run["rc"] == 0
    cp = seed7_run["cp"]                    # stderr names each file written, nothing else
    assert seed7_run["err"].splitlines() == [f"wrote {cp}_159.t7", f"wrote {cp}_159.json"]
    ours, gold = seed7_run["lines"], golden_log("lstm_seed7.log")
    assert ours[0] == gold[0] == "Running in CPU mode"
    assert len(ours) == len(gold) == 1 + 159 + 1
    ours_l, gold_l = losses(ours), losses(gold)
    assert sorted(ours_l) == sorted(gold_l) == list(range(1, 160))
    # the first loss is the same number at the printed precision: same initial weights
    assert ours_l[1][1] == gold_l[1][1] == "4.139461"
    worst = 0.0
    for i in range(1, 160):
        assert ours_l[i][0] == gold_l[i][0], i          # 'Epoch %.2f / %d, i = %d / %d'
        worst = max(worst, abs(float(ours_l[i][1]) - float(gold_l[i][1])))
    assert worst < 2e-5
    # line by line: the loss lines are in the same places
    for a, b in zip(ours[1:-1], gold[1:-1]):
        assert LOSS_LINE.match(a).group(1) == LOSS_LINE.match(b).group(1)
    ours_val, gold_val = VAL_LINE.match(ours[-1]), VAL_LINE.match(gold[-1])
    assert ours_val and gold_val, (ours[-1], gold[-1])
    assert abs(float(ours_val.group(1)) - float(gold_val.group(1))) < 1e-4


def test_seed7_checkpoint_files(seed7_run):
    tmp = seed7_run["dir"]
    assert sorted(p.name for p in tmp.iterdir()) == ["cp_159.json", "cp_159.t7"]


def test_seed7_checkpoint_json_is_lua_cjson(seed7_run):
    text = (seed7_run["dir"] / "cp_159.json").read_text()
    data = json.loads(text)
    assert '"forward_backward_times":{}' in text
    assert '"memory_usage":{}' in text
    name = str(seed7_run["cp"])
    assert '"checkpoint_name":"%s"' % name.replace("/", "\\/") in text
    assert " " not in re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)   # no spaces added
    history = data["train_loss_history"]
    assert len(history) == 159 and data["i"] == 159
    assert '"train_loss_history":[%s]' % ",".join("%.14g" % v for v in history) in text
    # the printed losses are the history values (float32 losses, as the original keeps)
    printed = losses(seed7_run["lines"])
    for i, v in enumerate(history, 1):
        assert "%f" % v == printed[i][1]
        assert "%.14g" % float(np.float32(v)) == "%.14g" % v
    assert data["val_loss_history_it"] == [159]
    val_printed = VAL_LINE.match(seed7_run["lines"][-1]).group(1)
    assert "%.14g" % data["val_loss_history"][0] == val_printed
    # same keys as the original's checkpoint JSON, every original flag in opt
    golden = json.loads((GOLDEN / "checkpoints" / "lstm_small_cp_159.json").read_text())
    assert set(data) == set(golden)
    assert set(golden["opt"]) <= set(data["opt"])
    for key in ("batch_size", "seq_length", "rnn_size", "num_layers", "wordvec_size",
                "learning_rate", "grad_clip", "lr_decay_every", "lr_decay_factor", "gpu"):
        assert data["opt"][key] == golden["opt"][key], key
    assert data["opt"]["checkpoint_every"] == 0 and data["opt"]["seed"] == 7
    # read back: {} becomes []
    read = ckpt.read_checkpoint_json(seed7_run["dir"] / "cp_159.json")
    assert read["forward_backward_times"] == [] and read["memory_usage"] == []
    assert read["train_loss_history"] == history


def test_seed7_checkpoint_holds_trained_model(seed7_run):
    loaded = ckpt.load_checkpoint(seed7_run["dir"] / "cp_159.t7")
    assert loaded["i"] == 159
    assert len(loaded["train_loss_history"]) == 159
    assert loaded["forward_backward_times"] == []
    model = loaded["model"]
    assert (model.model_type, model.rnn_size, model.num_layers, model.wordvec_dim) == \
        ("lstm", 64, 2, 32)
    loader = DataLoader(H5, 20, 50)
    val = train_mod.evaluate_split(model, loader, "val", torch.device("cpu"))
    printed = VAL_LINE.match(seed7_run["lines"][-1]).group(1)
    assert abs(val - float(printed)) < 1e-6


# -- (b) resume from the original's checkpoint ------------------------------------------------

def test_resume_from_cp100_matches_original(tmp_path):
    cp100 = GOLDEN / "checkpoints" / "lstm_small_cp_100.t7"
    rc, ours, err = run_main(GOLDEN_FLAGS + ["-init_from", str(cp100), "-reset_iterations", "0",
                                             "-checkpoint_name", str(tmp_path / "cp")])
    assert rc == 0 and err.splitlines() == [f"wrote {tmp_path / 'cp'}_159.t7",
                                            f"wrote {tmp_path / 'cp'}_159.json"]
    gold = golden_log("lstm_small_resume_from_cp100.log")
    assert ours[0] == gold[0] == "Running in CPU mode"
    assert gold[1].startswith("Initializing from \t")
    assert ours[1] == "Initializing from \t" + str(cp100)
    ours_l, gold_l = losses(ours), losses(gold)
    assert sorted(ours_l) == sorted(gold_l) == list(range(101, 160))
    for i in range(101, 160):
        assert ours_l[i][0] == gold_l[i][0]
        assert abs(float(ours_l[i][1]) - float(gold_l[i][1])) < 2e-5, i
    assert abs(float(VAL_LINE.match(ours[-1]).group(1))
               - float(VAL_LINE.match(gold[-1]).group(1))) < 1e-4
    # only the checkpoint of the last iteration; its history starts empty at 101
    data = json.loads((tmp_path / "cp_159.json").read_text())
    assert data["i"] == 159 and len(data["train_loss_history"]) == 59


# -- a tiny data set for the fast tests -----------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """710 train tokens: 7 batches of (2, 50), or 3 batches of (2, 100)."""
    tmp = tmp_path_factory.mktemp("tiny")
    return {"h5": str(make_tiny_h5(tmp)), "json": str(JSON), "dir": tmp}


def tiny_options(tiny, tmp_path, **overrides):
    opt = dict(input_h5=tiny["h5"], input_json=tiny["json"], batch_size=2, seq_length=50,
               rnn_size=8, wordvec_size=4, num_layers=1, max_epochs=1, gpu=-1,
               checkpoint_every=0, checkpoint_name=str(tmp_path / "cv" / "cp"), print_every=1)
    opt.update(overrides)
    return opt


def tiny_flags(tiny, tmp_path, **overrides):
    flags = []
    for key, value in tiny_options(tiny, tmp_path, **overrides).items():
        flags += ["-" + key, str(value)]
    return flags


# -- (c) the library --------------------------------------------------------------------------

def test_library_train_returns_histories_and_model(tiny, tmp_path, capsys):
    lines = []
    result = train_mod.train(log=lines.append, seed=3,
                             **tiny_options(tiny, tmp_path, max_epochs=2, checkpoint_every=3))
    assert capsys.readouterr().out == ""                  # lines went to log, not stdout
    assert isinstance(result["model"], LanguageModel)
    assert result["i"] == 14
    assert len(result["train_loss_history"]) == 14
    assert result["val_loss_history_it"] == [3, 6, 9, 12, 14]
    assert len(result["val_loss_history"]) == 5
    assert all(math.isfinite(v) for v in result["train_loss_history"])
    assert result["forward_backward_times"] == [] and result["memory_usage"] == []
    assert result["opt"]["rnn_size"] == 8 and result["opt"]["learning_rate"] == 2e-3
    assert lines[0] == "Running in CPU mode"
    assert sum(1 for line in lines if LOSS_LINE.match(line)) == 14
    assert sum(1 for line in lines if VAL_LINE.match(line)) == 5
    # the printed losses are the history
    printed = losses(lines)
    assert [printed[i][1] for i in range(1, 15)] == \
        ["%f" % v for v in result["train_loss_history"]]
    # training actually learns something on 14 steps of a tiny model... or at least moves
    assert result["train_loss_history"][0] != result["train_loss_history"][-1]


def test_library_train_is_silent_unless_verbose(tiny, tmp_path, capsys):
    train_mod.train(seed=1, **tiny_options(tiny, tmp_path))
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    train_mod.train(seed=1, verbose=True, **tiny_options(tiny, tmp_path))
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Running in CPU mode" and LOSS_LINE.match(out[1])


def test_library_train_reports_progress_after_every_iteration(tiny, tmp_path, capsys):
    calls = []
    result = train_mod.train(seed=3, progress=calls.append,
                             **tiny_options(tiny, tmp_path, max_epochs=2, checkpoint_every=5))
    assert capsys.readouterr() == ("", "")                # still silent: not verbose
    assert [c["i"] for c in calls] == list(range(1, 15))
    assert all(c["num_iterations"] == 14 for c in calls)
    assert [c["loss"] for c in calls] == result["train_loss_history"]
    assert calls[0]["epoch"] == 1 + 1 / 7 and calls[13]["epoch"] == 3.0
    assert all(c["learning_rate"] == 2e-3 for c in calls)
    validated = [c["i"] for c in calls if c["val_loss"] is not None]
    assert validated == [5, 10, 14]
    assert [c["val_loss"] for c in calls if c["val_loss"] is not None] == \
        result["val_loss_history"]
    written = {c["i"]: c["checkpoint"] for c in calls if c["checkpoint"] is not None}
    assert written == {i: str(tmp_path / "cv" / f"cp_{i}.t7") for i in (5, 10, 14)}
    seconds = [c["seconds"] for c in calls]
    assert seconds == sorted(seconds) and seconds[0] >= 0
    assert set(calls[0]) == {"i", "num_iterations", "epoch", "loss", "learning_rate",
                             "val_loss", "checkpoint", "seconds"}


def test_library_rejects_unknown_option(tiny, tmp_path):
    with pytest.raises(train_mod.TorchRNNError):
        train_mod.train(bogus=1, **tiny_options(tiny, tmp_path))


# -- (d) seeded dropout, checkpoint JSON ---------------------------------------------------------

def test_seeded_dropout_is_repeatable(tiny, tmp_path):
    def run(seed):
        return train_mod.train(seed=seed, dropout=0.25,
                               **tiny_options(tiny, tmp_path, max_epochs=2))["train_loss_history"]
    first, again, other = run(11), run(11), run(12)
    assert len(first) == 14
    assert first == again
    assert first != other


def test_seeded_dropout_masks_come_from_the_seed(tiny, tmp_path):
    # Same seed, same initial weights: with dropout the losses differ from without.
    with_dropout = train_mod.train(seed=11, dropout=0.25, **tiny_options(tiny, tmp_path))
    without = train_mod.train(seed=11, **tiny_options(tiny, tmp_path))
    assert with_dropout["train_loss_history"] != without["train_loss_history"]


def test_unseeded_dropout_trains(tiny, tmp_path):
    # Without -seed, dropout masks come from the OS-seeded generator: training must run.
    a = train_mod.train(dropout=0.25, **tiny_options(tiny, tmp_path))
    b = train_mod.train(dropout=0.25, **tiny_options(tiny, tmp_path))
    assert len(a["train_loss_history"]) == 7
    assert all(math.isfinite(v) for v in a["train_loss_history"])
    assert a["train_loss_history"] != b["train_loss_history"]


def test_checkpoint_json_numbers_and_escapes(tiny, tmp_path):
    result = train_mod.train(seed=5, **tiny_options(tiny, tmp_path, checkpoint_every=3))
    path = tmp_path / "cv" / "cp_7.json"
    text = path.read_text()
    assert '"forward_backward_times":{}' in text and '"memory_usage":{}' in text
    escaped = str(tmp_path / "cv" / "cp").replace("/", "\\/")
    assert '"checkpoint_name":"%s"' % escaped in text
    for key in ("train_loss_history", "val_loss_history"):
        expected = "[" + ",".join("%.14g" % v for v in result[key]) + "]"
        assert '"%s":%s' % (key, expected) in text
    assert '"val_loss_history_it":[3,6,7]' in text
    assert '"i":7' in text
    read = ckpt.read_checkpoint_json(path)
    assert read["forward_backward_times"] == [] and read["memory_usage"] == []
    assert read["val_loss_history_it"] == [3, 6, 7]
    # the intermediate checkpoint holds what was known then
    early = ckpt.read_checkpoint_json(tmp_path / "cv" / "cp_3.json")
    assert early["i"] == 3 and len(early["train_loss_history"]) == 3
    assert early["val_loss_history_it"] == [3]


# -- (e) the epoch / decay quirk and the checkpoint schedule ------------------------------------

@pytest.mark.parametrize("decay_every", [1, 2, 5])
def test_epoch_boundary_resets_and_decay(tiny, tmp_path, monkeypatch, decay_every):
    events = {"steps": 0, "lrs": [], "adam_resets": [], "state_resets": [],
              "state_at_step": []}
    real_step = optim_mod.TorchAdam.step
    real_reset_state = optim_mod.TorchAdam.reset_state
    real_reset_states = LanguageModel.reset_states

    def step(self, closure=None):
        events["steps"] += 1
        events["lrs"].append(self.param_groups[0]["lr"])
        events["state_at_step"].append(len(self.state))
        return real_step(self, closure)

    def reset_state(self):
        events["adam_resets"].append(events["steps"] + 1)
        return real_reset_state(self)

    def reset_states(self):
        events["state_resets"].append((events["steps"] + 1, self.training))
        return real_reset_states(self)

    monkeypatch.setattr(optim_mod.TorchAdam, "step", step)
    monkeypatch.setattr(optim_mod.TorchAdam, "reset_state", reset_state)
    monkeypatch.setattr(LanguageModel, "reset_states", reset_states)

    lr0, factor, num_train, max_epochs = 2e-3, 0.5, 3, 4
    lines = []
    result = train_mod.train(log=lines.append, seed=2, lr_decay_every=decay_every,
                             lr_decay_factor=factor, learning_rate=lr0,
                             **tiny_options(tiny, tmp_path, seq_length=100,
                                            max_epochs=max_epochs))
    total = num_train * max_epochs
    assert result["i"] == total == events["steps"]

    # docs/compatibility.md ("train"), written out
    boundaries = [i for i in range(1, total + 1) if i % num_train == 0]
    decays = [i for i in boundaries if (i // num_train + 1) % decay_every == 0]
    expected_lr, lr = [], lr0
    for i in range(1, total + 1):
        if i in decays:
            lr *= factor
        expected_lr.append(lr)

    assert events["adam_resets"] == decays
    assert events["lrs"] == pytest.approx(expected_lr, rel=1e-15)
    # Adam's state is empty exactly at the first step and at each decay step
    empty_at = [i + 1 for i, n in enumerate(events["state_at_step"]) if n == 0]
    assert empty_at == [1] + decays
    training_resets = [i for i, training in events["state_resets"] if training]
    assert training_resets == boundaries
    # validation (last iteration only here) starts from zero states too
    assert any(not training for _, training in events["state_resets"])
    # the printed epoch is i / num_train + 1
    printed = losses(lines)
    assert printed[3][0] == "Epoch 2.00 / 4, i = 3 / 12"
    assert printed[4][0] == "Epoch 2.33 / 4, i = 4 / 12"


def test_default_decay_comes_at_end_of_epoch_4(tiny, tmp_path, monkeypatch):
    calls = []
    steps = {"n": 0}
    real_step = optim_mod.TorchAdam.step

    def step(self, closure=None):
        steps["n"] += 1
        return real_step(self, closure)

    monkeypatch.setattr(optim_mod.TorchAdam, "step", step)
    monkeypatch.setattr(optim_mod.TorchAdam, "reset_state",
                        lambda self: calls.append(steps["n"] + 1) or self.state.clear())
    train_mod.train(seed=2, **tiny_options(tiny, tmp_path, seq_length=100, max_epochs=10))
    # num_train 3: epoch = i // 3 + 1 is 5 at i = 12 (last batch of epoch 4), then 10 at 27
    assert calls == [12, 27]


def test_checkpoint_schedule(tiny, tmp_path):
    result = train_mod.train(seed=4, **tiny_options(tiny, tmp_path, checkpoint_every=2))
    assert result["i"] == 7
    names = sorted(p.name for p in (tmp_path / "cv").iterdir())
    assert names == sorted(f"cp_{i}.{ext}" for i in (2, 4, 6, 7) for ext in ("json", "t7"))
    last = ckpt.read_checkpoint_json(tmp_path / "cv" / "cp_7.json")
    assert last["val_loss_history_it"] == [2, 4, 6, 7]
    assert len(last["train_loss_history"]) == 7
    loaded = ckpt.load_checkpoint(tmp_path / "cv" / "cp_4.t7")
    assert loaded["i"] == 4 and len(loaded["train_loss_history"]) == 4
    assert loaded["val_loss_history_it"] == [2, 4]


# -- (f) speed benchmark -------------------------------------------------------------------------

def test_speed_benchmark(tiny, tmp_path):
    rc, lines, err = run_main(tiny_flags(tiny, tmp_path, speed_benchmark=1))
    assert rc == 0 and "warning" not in err and "Forward" not in err
    timing = [k for k, line in enumerate(lines)
              if re.match(r"^Forward / Backward pass took \t\d+(\.\d+)?(e-?\d+)?$", line)]
    assert len(timing) == 7
    for k in timing:                                    # each right before its loss line
        assert LOSS_LINE.match(lines[k + 1])
    data = ckpt.read_checkpoint_json(tmp_path / "cv" / "cp_7.json")
    times = data["forward_backward_times"]
    assert len(times) == 7 and all(t > 0 for t in times)
    assert ["%.14g" % t for t in times] == [lines[k].split("\t")[1] for k in timing]


# -- (g) bad input -------------------------------------------------------------------------------

def _random_bytes(path, n=3000, seed=0):
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes())
    return str(path)


def _bad_case(case, tiny, tmp):
    """(flags overrides or extra argv, text expected in the error line)."""
    if case == "missing_h5":
        return {"input_h5": str(tmp / "missing.h5")}, [], "missing.h5"
    if case == "corrupt_h5":
        return {"input_h5": _random_bytes(tmp / "corrupt.h5")}, [], "corrupt.h5"
    if case == "small_vocab":
        path = tmp / "small.json"
        write_vocab(path, list("abcdefghij"))
        return {"input_json": str(path)}, [], "tiny.h5"
    if case == "no_train":
        path = tmp / "notrain.h5"
        with h5py.File(path, "w") as f:
            f.create_dataset("val", data=np.ones(300, np.uint8))
            f.create_dataset("test", data=np.ones(300, np.uint8))
        return {"input_h5": str(path)}, [], "notrain.h5"
    if case == "init_from_random":
        return {"init_from": _random_bytes(tmp / "random.t7", seed=1)}, [], "random.t7"
    if case == "init_from_table":
        path = tmp / "table.t7"
        write_t7(path, {"a": 1.0, "b": "text"})
        return {"init_from": str(path)}, [], "table.t7"
    if case == "unknown_flag":
        return {}, ["-frobnicate", "1"], "frobnicate"
    if case == "bad_model_type":
        return {"model_type": "transformer"}, [], "transformer"
    if case == "dropout_1":
        return {"dropout": 1}, [], "dropout"
    if case == "checkpoint_under_file":
        blocker = tmp / "regular_file"
        blocker.write_text("not a directory")
        return {"checkpoint_name": str(blocker / "sub" / "cp")}, [], "regular_file"
    raise AssertionError(case)


BAD_CASES = ["missing_h5", "corrupt_h5", "small_vocab", "no_train", "init_from_random",
             "init_from_table", "unknown_flag", "bad_model_type", "dropout_1", "checkpoint_under_file"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_one_line_on_stderr(case, tiny, tmp_path, capsys):
    overrides, extra, named = _bad_case(case, tiny, tmp_path)
    argv = tiny_flags(tiny, tmp_path, **overrides) + extra
    rc = train_cli.main(argv)
    out, err = capsys.readouterr()
    assert rc != 0
    assert "Traceback" not in out + err
    err_lines = err.strip("\n").splitlines()
    assert len(err_lines) == 1, err
    assert named in err_lines[0], err_lines[0]
    assert not list(tmp_path.glob("cv/*.t7"))             # nothing was trained


# -- (h) GPU requests on a machine without one ------------------------------------------------

@pytest.mark.parametrize("backend", ["cuda", "opencl"])
def test_gpu_request_falls_back_to_cpu(tiny, tmp_path, capsys, monkeypatch, backend):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    rc = train_cli.main(tiny_flags(tiny, tmp_path, gpu=0, gpu_backend=backend))
    out, err = capsys.readouterr()
    assert rc == 0
    err_lines = err.strip("\n").splitlines()
    assert len(err_lines) == 3 and "CPU" in err_lines[0]
    assert err_lines[1:] == [f"wrote {tmp_path / 'cv' / 'cp_7'}.{ext}" for ext in ("t7", "json")]
    lines = out.splitlines()
    assert lines[0] == "Running in CPU mode"
    assert len(losses(lines)) == 7
    assert (tmp_path / "cv" / "cp_7.t7").exists()


# -- (i) help -----------------------------------------------------------------------------------

TRAIN_LUA_FLAGS = [
    "input_h5", "input_json", "batch_size", "seq_length", "init_from", "reset_iterations",
    "model_type", "wordvec_size", "rnn_size", "num_layers", "dropout", "batchnorm",
    "max_epochs", "learning_rate", "grad_clip", "lr_decay_every", "lr_decay_factor",
    "print_every", "checkpoint_every", "checkpoint_name", "speed_benchmark",
    "memory_benchmark", "gpu", "gpu_backend",
]


def test_help_lists_every_flag():
    proc = subprocess.run([sys.executable, "-m", "torchrnn_py.train", "-h"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    flags = set(re.findall(r"-(\w+)", proc.stdout))
    for name in TRAIN_LUA_FLAGS + ["seed"]:
        assert name in flags, name
    assert "Traceback" not in proc.stderr


def test_defaults_are_train_lua_defaults():
    expected = {"input_h5": "data/tiny-shakespeare.h5",
                "input_json": "data/tiny-shakespeare.json", "batch_size": 50,
                "seq_length": 50, "init_from": "", "reset_iterations": 1,
                "model_type": "lstm", "wordvec_size": 64, "rnn_size": 128, "num_layers": 2,
                "dropout": 0, "batchnorm": 0, "max_epochs": 50, "learning_rate": 2e-3,
                "grad_clip": 5, "lr_decay_every": 5, "lr_decay_factor": 0.5,
                "print_every": 1, "checkpoint_every": 1000,
                "checkpoint_name": "cv/checkpoint", "speed_benchmark": 0,
                "memory_benchmark": 0, "gpu": 0, "gpu_backend": "cuda"}
    assert [name for name, _, _ in train_mod.OPTIONS][:len(TRAIN_LUA_FLAGS)] == TRAIN_LUA_FLAGS
    for name, value in expected.items():
        assert train_mod.DEFAULTS[name] == value, name


# -- fixes from review ------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["nan", "inf"])
def test_max_epochs_must_be_finite(tiny, tmp_path, value):
    rc, out, err = run_main(tiny_flags(tiny, tmp_path, max_epochs=value))
    assert rc != 0 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "-max_epochs" in err


def test_batchnorm_flag_means_one_as_in_the_lua(tiny, tmp_path):
    # LanguageModel.lua adds BatchNormalization only when batchnorm == 1
    assert LanguageModel({1: "a", 2: "b"}, batchnorm=2).batchnorm == 0
    assert len(LanguageModel({1: "a", 2: "b"}, batchnorm=1).batchnorms) == 2
    result = train_mod.train(**tiny_options(tiny, tmp_path, batchnorm=2, max_epochs=0.3))
    assert len(result["model"].batchnorms) == 0


def test_memory_benchmark_is_recorded_as_off_on_the_cpu(tiny, tmp_path):
    # train.lua sets opt.memory_benchmark = 0 outside CUDA, and saves it that way
    train_mod.train(**tiny_options(tiny, tmp_path, memory_benchmark=1, max_epochs=0.3))
    saved = ckpt.read_checkpoint_json(str(tmp_path / "cv" / "cp_2.json"))
    assert saved["opt"]["memory_benchmark"] == 0


def test_init_from_a_bare_model_file_keeps_counting_from_zero(tiny, tmp_path):
    first = train_mod.train(**tiny_options(tiny, tmp_path, max_epochs=0.3))
    bare = tmp_path / "bare.t7"
    write_t7(str(bare), ckpt.model_to_t7(first["model"]))          # torch.save(model) alone
    result = train_mod.train(**tiny_options(tiny, tmp_path, init_from=str(bare),
                                            reset_iterations=0, max_epochs=0.3))
    assert result["i"] == 2 and len(result["train_loss_history"]) == 2


def test_log_csv_resumed_from_an_earlier_checkpoint_has_each_iteration_once(tiny, tmp_path):
    csv_path = tmp_path / "run.csv"
    train_mod.train(**tiny_options(tiny, tmp_path, checkpoint_every=2, log_csv=str(csv_path)))
    assert [row.split(",")[0] for row in csv_path.read_text().splitlines()[1:]] == \
        [str(i) for i in range(1, 8)]
    train_mod.train(resume_from=str(tmp_path / "cv" / "cp_4.t7"), log_csv=str(csv_path),
                    checkpoint_name=str(tmp_path / "cv" / "cp"))
    rows = csv_path.read_text().splitlines()
    assert rows[0] == "i,epoch,loss,learning_rate,seconds,val_loss"
    assert [row.split(",")[0] for row in rows[1:]] == [str(i) for i in range(1, 8)]


# -- (j) a model meets a vocabulary: the same table, a mapped subset, or one line ----------

CP159 = GOLDEN / "checkpoints" / "lstm_small_cp_159.t7"     # shakespeare200k's 62 tokens
PLACENAMES = LEGACY / "placenames_checkpoint_8450.t7"       # 84 tokens, 3 of those unknown


def reencoded(tiny, tmp_path, tokens):
    """tiny.h5 with its ids renumbered in a vocabulary of ``tokens`` (in that order)."""
    from torchrnn_py.vocab import read_vocab
    old = read_vocab(JSON)
    new_ids = {t: k for k, t in enumerate(tokens, start=1)}
    table = np.zeros(len(old) + 1, np.uint8)
    for idx, token in old.idx_to_token.items():
        table[idx] = new_ids.get(token, 0)
    h5_path, json_path = tmp_path / "other.h5", tmp_path / "other.json"
    with h5py.File(tiny["h5"], "r") as src, h5py.File(h5_path, "w") as dst:
        for split in ("train", "val", "test"):
            ids = table[src[split][()]]
            assert ids.min() >= 1                        # every used token is in `tokens`
            dst.create_dataset(split, data=ids)
    write_vocab(json_path, tokens)
    return str(h5_path), str(json_path)


def used_tokens(tiny):
    from torchrnn_py.vocab import read_vocab
    vocab = read_vocab(JSON)
    with h5py.File(tiny["h5"], "r") as f:
        ids = np.unique(np.concatenate([f[s][()] for s in ("train", "val", "test")]))
    return [vocab.idx_to_token[int(k)] for k in ids]


def test_init_from_maps_a_subset_vocabulary_by_token(tiny, tmp_path):
    # the data's own vocabulary: only the tokens it uses, in reverse order (other ids)
    tokens = sorted(used_tokens(tiny), reverse=True)
    assert len(tokens) < 62
    h5_path, json_path = reencoded(tiny, tmp_path, tokens)
    same = train_mod.train(seed=1, **tiny_options(tiny, tmp_path / "a", init_from=str(CP159)))
    warnings = []
    mapped = train_mod.train(seed=1, warn=warnings.append,
                             **tiny_options(tiny, tmp_path / "b", init_from=str(CP159),
                                            input_h5=h5_path, input_json=json_path))
    # exactly the run on the model's own ids
    assert mapped["train_loss_history"] == same["train_loss_history"]
    assert mapped["val_loss_history"] == same["val_loss_history"]
    assert warnings[0] == (f"the data's {len(tokens)} tokens are mapped to the model's "
                           f"vocabulary of 62 tokens (ids by token)")
    saved = ckpt.load_checkpoint(tmp_path / "b" / "cv" / "cp_7.t7")["model"]
    assert saved.idx_to_token == ckpt.load_checkpoint(CP159)["model"].idx_to_token


def test_init_from_with_tokens_the_model_does_not_know_is_one_line(tiny, tmp_path, capsys):
    rc = train_cli.main(tiny_flags(tiny, tmp_path, init_from=str(PLACENAMES)))
    out, err = capsys.readouterr()
    assert rc == 1 and "Traceback" not in err
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1, err
    assert "shakespeare200k.json" in lines[0] and "placenames_checkpoint_8450.t7" in lines[0]
    assert "3 of its 62 tokens are unknown" in lines[0]
    from torchrnn_py.vocab import read_vocab
    known = set(ckpt.load_checkpoint(PLACENAMES)["model"].idx_to_token.values())
    unknown = [t for t in read_vocab(JSON).tokens if t not in known]
    assert all(repr(t) in lines[0] for t in unknown)
    assert not (tmp_path / "cv").exists() or not list((tmp_path / "cv").iterdir())


def test_init_from_with_the_same_vocabulary_says_nothing(tiny, tmp_path, capsys):
    rc = train_cli.main(tiny_flags(tiny, tmp_path, init_from=str(CP159)))
    err = capsys.readouterr().err
    assert rc == 0 and "mapped" not in err and err.startswith("wrote ")


# -- (k) -max_epochs too small, the files written, outputs that are inputs -----------------

def test_max_epochs_below_one_iteration_says_so(tiny, tmp_path, capsys):
    rc = train_cli.main(tiny_flags(tiny, tmp_path, max_epochs=0.1))     # 0.7 of 7 batches
    out, err = capsys.readouterr()
    assert rc == 0
    assert out.splitlines() == ["Running in CPU mode"]
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1 and "-max_epochs 0.1" in lines[0] and "nothing" in lines[0], err
    assert not (tmp_path / "cv").exists()


def test_each_file_written_is_named_on_stderr(tiny, tmp_path, capsys):
    csv_path = tmp_path / "log.csv"
    rc = train_cli.main(tiny_flags(tiny, tmp_path, checkpoint_every=3, log_csv=str(csv_path)))
    out, err = capsys.readouterr()
    assert rc == 0
    cp = tmp_path / "cv" / "cp"
    assert err.splitlines() == [f"writing CSV log {csv_path}"] + [
        f"wrote {cp}_{i}.{ext}" for i in (3, 6, 7) for ext in ("t7", "json")]
    assert "wrote" not in out and len(losses(out.splitlines())) == 7
    # the library prints nothing, or hands the lines to warn
    notes = []
    train_mod.train(warn=notes.append, **tiny_options(tiny, tmp_path / "lib"))
    assert notes == [f"wrote {tmp_path / 'lib' / 'cv' / 'cp'}_7.{e}" for e in ("t7", "json")]
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("victim", ["input_h5", "input_json", "init_from", "resume_from",
                                    "checkpoint"])
def test_log_csv_cannot_overwrite_an_input_or_a_checkpoint(victim, tiny, tmp_path, capsys):
    import shutil
    h5_copy = tmp_path / "my.h5"
    shutil.copy(tiny["h5"], h5_copy)
    json_copy = tmp_path / "my.json"
    shutil.copy(JSON, json_copy)
    first = tmp_path / "first" / "cp"
    train_mod.train(seed=1, **tiny_options(tiny, tmp_path, checkpoint_name=str(first)))
    overrides = {"input_h5": str(h5_copy), "input_json": str(json_copy)}
    targets = {"input_h5": h5_copy, "input_json": json_copy,
               "init_from": tmp_path / "first" / "cp_7.t7",
               "resume_from": tmp_path / "first" / "cp_7.t7",
               "checkpoint": tmp_path / "cv" / "cp_7.json"}
    if victim in ("init_from", "resume_from"):
        overrides[victim] = str(targets[victim])
    if victim == "resume_from":
        overrides["max_epochs"] = 2
    target = targets[victim]
    if victim == "checkpoint":
        target.parent.mkdir(parents=True)
        target.write_text("an older run's checkpoint JSON")
    before = target.read_bytes()
    rc = train_cli.main(tiny_flags(tiny, tmp_path, log_csv=str(target), **overrides))
    out, err = capsys.readouterr()
    assert rc == 1 and "Traceback" not in err
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1 and str(target) in lines[0] and "overwrite" in lines[0], err
    assert target.read_bytes() == before
    assert not list((tmp_path / "cv").glob("*.t7"))


def test_a_checkpoint_of_the_run_cannot_overwrite_its_init_from(tiny, tmp_path, capsys):
    train_mod.train(seed=1, **tiny_options(tiny, tmp_path, max_epochs=0.5))     # cp_3
    source = tmp_path / "cv" / "cp_3.t7"
    before = source.read_bytes()
    rc = train_cli.main(tiny_flags(tiny, tmp_path, init_from=str(source)))
    err = capsys.readouterr().err
    assert rc == 1 and len(err.strip("\n").splitlines()) == 1 and str(source) in err
    assert "-checkpoint_name" in err and source.read_bytes() == before


# -- (l) numbers users type: NaN, infinity, too large --------------------------------------

NUMERIC_FLAGS = [name for name, default, _ in train_mod.OPTIONS
                 if isinstance(default, (int, float)) and not isinstance(default, bool)]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("name", NUMERIC_FLAGS)
def test_non_finite_numeric_flags_are_one_line(name, value, tiny, tmp_path, capsys):
    rc = train_cli.main(tiny_flags(tiny, tmp_path) + [f"-{name}", value])
    out, err = capsys.readouterr()
    assert rc == 1 and "Traceback" not in err
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1 and f"-{name} " in lines[0] and "finite" in lines[0], err
    assert "loss" not in out and not (tmp_path / "cv").exists()


@pytest.mark.parametrize("name,value", [("learning_rate", 1e300), ("grad_clip", 1e300),
                                        ("batch_size", 1e300), ("num_layers", 2 ** 40)])
def test_numbers_beyond_what_training_can_use_are_one_line(name, value, tiny, tmp_path, capsys):
    rc = train_cli.main(tiny_flags(tiny, tmp_path, **{name: value}))
    err = capsys.readouterr().err
    assert rc == 1 and len(err.strip("\n").splitlines()) == 1 and f"-{name} must" in err


def test_library_rejects_a_string_for_a_number(tiny, tmp_path):
    with pytest.raises(train_mod.TorchRNNError, match="-rnn_size must be a number"):
        train_mod.train(**tiny_options(tiny, tmp_path, rnn_size="128"))


def test_a_diverging_loss_stops_training_before_a_checkpoint(tiny, tmp_path, capsys):
    rc = train_cli.main(tiny_flags(tiny, tmp_path, learning_rate=1e38, seed=1))
    out, err = capsys.readouterr()
    assert rc == 1 and "Traceback" not in err
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1 and "at iteration 2" in lines[0] and "nan" in lines[0], err
    assert len(losses(out.splitlines())) == 1              # iteration 1 printed, not 2
    assert not list(tmp_path.glob("cv/*.t7"))


def test_non_finite_weights_are_never_written(tiny, tmp_path, monkeypatch):
    # a step that leaves NaN weights behind a finite loss: the checkpoint is refused
    step, steps = optim_mod.TorchAdam.step, []

    def poisoned(self, *args, **kwargs):
        result = step(self, *args, **kwargs)
        steps.append(1)
        if len(steps) == 7:                               # the last step, after its loss
            with torch.no_grad():
                self.param_groups[0]["params"][0].view(-1)[0] = float("nan")
        return result
    monkeypatch.setattr(optim_mod.TorchAdam, "step", poisoned)
    with pytest.raises(train_mod.TorchRNNError, match="non-finite .* at iteration 7"):
        train_mod.train(seed=1, **tiny_options(tiny, tmp_path))
    assert not list(tmp_path.glob("cv/*.t7"))


# -- (m) a model too large for the machine ---------------------------------------------------

def test_a_model_too_large_for_memory_is_one_line(tiny, tmp_path, capsys):
    rc = train_cli.main(tiny_flags(tiny, tmp_path, rnn_size=100000, num_layers=2))
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1 and "-rnn_size 100000" in lines[0] and "parameters" in lines[0]
    assert f"{train_mod.model_parameter_count('lstm', 62, 4, 100000, 2):,}" in lines[0]


def test_parameter_count_is_the_models(tiny):
    for kind, batchnorm in (("lstm", 0), ("rnn", 1)):
        model = LanguageModel({k: chr(64 + k) for k in range(1, 30)}, kind, 5, 7, 3,
                              batchnorm=batchnorm)
        assert train_mod.model_parameter_count(kind, 29, 5, 7, 3, batchnorm) == \
            sum(p.numel() for p in model.parameters())


def test_an_allocation_failure_is_one_line(tiny, tmp_path, capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:114] DefaultCPUAllocator: not "
                           "enough memory: you tried to allocate 320000000000 bytes.")
    monkeypatch.setattr(train_mod, "LanguageModel", refuse)
    rc = train_cli.main(tiny_flags(tiny, tmp_path, rnn_size=4000))
    err = capsys.readouterr().err
    assert rc == 1 and len(err.strip("\n").splitlines()) == 1
    assert "not enough memory" in err and "-rnn_size 4000" in err and "Traceback" not in err


@pytest.mark.parametrize("placing", ["to", "stream_to"])
def test_training_on_data_kept_on_the_device_gives_the_same_losses(tiny, tmp_path,
                                                                  monkeypatch, placing):
    """The GPU's paths (the loader's splits on the device, batches sliced there; or kept on
    the host, batches streamed) run on the CPU: the same losses and checkpoint weights as
    the host path."""
    def run(name):
        result = train_mod.train(seed=5, **tiny_options(tiny, tmp_path / name, dropout=0.25))
        return result["train_loss_history"], result["model"].state_dict()

    host_losses, host_weights = run("host")

    class OnDevice(train_mod.DataLoader):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            getattr(self, placing)(torch.device("cpu"))

    monkeypatch.setattr(train_mod, "DataLoader", OnDevice)
    losses, weights = run("device")
    assert losses == host_losses and len(losses) > 0
    assert all(torch.equal(weights[k], host_weights[k]) for k in host_weights)


def test_fp16_training_is_refused_before_any_file_is_read(tmp_path):
    """-precision fp16 would need loss scaling: refused with the other option checks, before
    the data (absent here) is looked at."""
    with pytest.raises(train_mod.TorchRNNError, match="fp16 is for sampling and evaluation"):
        train_mod.train(input_h5=str(tmp_path / "absent.h5"), input_json=str(tmp_path / "a.json"),
                        precision="fp16", gpu=-1)
