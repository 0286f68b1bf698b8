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

from conftest import GOLDEN, make_tiny_h5
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
        rc = train_mod.main(argv)
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

    # SPEC §4, written out
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
    if case == "gru":
        return {"model_type": "gru"}, [], "gru"
    if case == "dropout_1":
        return {"dropout": 1}, [], "dropout"
    if case == "checkpoint_under_file":
        blocker = tmp / "regular_file"
        blocker.write_text("not a directory")
        return {"checkpoint_name": str(blocker / "sub" / "cp")}, [], "regular_file"
    raise AssertionError(case)


BAD_CASES = ["missing_h5", "corrupt_h5", "small_vocab", "no_train", "init_from_random",
             "init_from_table", "unknown_flag", "gru", "dropout_1", "checkpoint_under_file"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_one_line_on_stderr(case, tiny, tmp_path, capsys):
    overrides, extra, named = _bad_case(case, tiny, tmp_path)
    argv = tiny_flags(tiny, tmp_path, **overrides) + extra
    rc = train_mod.main(argv)
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
    rc = train_mod.main(tiny_flags(tiny, tmp_path, gpu=0, gpu_backend=backend))
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
