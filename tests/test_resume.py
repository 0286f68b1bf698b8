"""-resume_from: a run interrupted and resumed from its checkpoint gives exactly the losses of
a run never interrupted (learning-rate decay, Adam reset and state reset after the resume
point included); Ctrl-C / SIGTERM write that checkpoint; -log_csv; what the original sees."""
import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import torchfile

from conftest import GOLDEN, make_tiny_h5
from torchrnn_py.cli import train as train_cli
from torchrnn_py import checkpoint as ckpt
from torchrnn_py import train as train_mod
from torchrnn_py.errors import TorchRNNError
from torchrnn_py.t7 import read_t7

H5 = GOLDEN / "shakespeare200k.h5"
JSON = GOLDEN / "shakespeare200k.json"
GOLDEN_CP100 = GOLDEN / "checkpoints" / "lstm_small_cp_100.t7"
CSV_HEADER = ["i", "epoch", "loss", "learning_rate", "seconds", "val_loss"]
NUM_TRAIN = 7          # training batches per epoch of the tiny data set


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """710 train tokens: 7 batches of (2, 50) per epoch; 250 val and test tokens."""
    return str(make_tiny_h5(tmp_path_factory.mktemp("resume_data")))


def options(tiny, name, **overrides):
    """3 epochs of 7 iterations, decay (and Adam reset) every epoch, checkpoints every 5:
    resuming from cp_5 crosses the epoch ends at 7, 14 and 21 and the checkpoints 10..20."""
    opt = dict(input_h5=tiny, input_json=str(JSON), batch_size=2, seq_length=50,
               rnn_size=8, wordvec_size=4, num_layers=2, max_epochs=3, gpu=-1,
               checkpoint_every=5, lr_decay_every=1, lr_decay_factor=0.5, print_every=1,
               checkpoint_name=str(name))
    opt.update(overrides)
    return opt


def flags(opt):
    out = []
    for key, value in opt.items():
        out += ["-" + key, str(value)]
    return out


def assert_same_run(a, b):
    """Two finished runs (train()'s results) are the same to the last bit."""
    for key in ("train_loss_history", "val_loss_history", "val_loss_history_it"):
        assert a[key] == b[key], key
    assert a["i"] == b["i"]
    for (name, x), (_, y) in zip(a["model"].state_dict().items(),
                                 b["model"].state_dict().items()):
        # PyTorch's BatchNorm counter is not in the .t7 and unused with momentum 0.1
        if not name.endswith("num_batches_tracked"):
            assert torch.equal(x, y), name


def assert_same_resume_state(path_a, path_b):
    """The final checkpoints agree on learning rate, Adam moments and steps, cursors, RNG."""
    a = ckpt.load_checkpoint(path_a).resume.table
    b = ckpt.load_checkpoint(path_b).resume.table
    assert a["learning_rate"] == b["learning_rate"]
    assert a["data_cursor"] == b["data_cursor"]
    assert len(a["adam"]) == len(b["adam"])
    for ma, mb in zip(_as_list(a["adam"]), _as_list(b["adam"])):
        assert (ma or {}).get("step") == (mb or {}).get("step")
        if ma:
            assert torch.equal(ma["m"], mb["m"]) and torch.equal(ma["v"], mb["v"])
    assert torch.equal(a["torch7_generator"]["key"], b["torch7_generator"]["key"])
    assert a["torch7_generator"]["pos"] == b["torch7_generator"]["pos"]


CASES = {
    "plain": dict(seed=3),
    "seeded_dropout": dict(seed=3, dropout=0.3),
    "batchnorm_dropout": dict(seed=5, dropout=0.3, batchnorm=1),
    "unseeded_dropout": dict(dropout=0.3),          # PyTorch's generator state is restored
    "rnn": dict(seed=4, model_type="rnn", dropout=0.2),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_resume_equals_uninterrupted(case, tiny, tmp_path):
    full = train_mod.train(**options(tiny, tmp_path / "full" / "cp", **CASES[case]))
    assert full["i"] == 21 and full["val_loss_history_it"] == [5, 10, 15, 20, 21]
    resumed = train_mod.train(resume_from=str(tmp_path / "full" / "cp_5.t7"),
                              checkpoint_name=str(tmp_path / "resumed" / "cp"))
    assert_same_run(full, resumed)
    # the decays after the resume point happened: 2e-3 halved at 7, 14 and 21
    assert_same_resume_state(tmp_path / "full" / "cp_21.t7", tmp_path / "resumed" / "cp_21.t7")
    final = ckpt.load_checkpoint(tmp_path / "resumed" / "cp_21.t7")
    assert final.resume.table["learning_rate"] == 2e-3 * 0.5 ** 3
    # the resumed run wrote the checkpoints after 5, with the whole history in each
    assert sorted(p.name for p in (tmp_path / "resumed").glob("*.t7")) == \
        ["cp_10.t7", "cp_15.t7", "cp_20.t7", "cp_21.t7"]
    assert ckpt.read_checkpoint_json(tmp_path / "resumed" / "cp_15.json") == \
        ckpt.read_checkpoint_json(tmp_path / "full" / "cp_15.json") | \
        {"opt": ckpt.read_checkpoint_json(tmp_path / "resumed" / "cp_15.json")["opt"]}


def test_resume_from_a_later_checkpoint_and_printed_lines(tiny, tmp_path):
    opt = options(tiny, tmp_path / "full" / "cp", seed=9, dropout=0.3)
    full_lines, resumed_lines = [], []
    full = train_mod.train(log=full_lines.append, **opt)
    resumed = train_mod.train(log=resumed_lines.append,
                              resume_from=str(tmp_path / "full" / "cp_15.t7"),
                              checkpoint_name=str(tmp_path / "resumed" / "cp"))
    assert_same_run(full, resumed)
    assert resumed_lines[0] == "Running in CPU mode"
    assert resumed_lines[1] == "Resuming from \t" + str(tmp_path / "full" / "cp_15.t7")
    # every line after iteration 15 is printed exactly as the uninterrupted run printed it
    start = full_lines.index(next(line for line in full_lines if "i = 16 /" in line))
    assert resumed_lines[2:] == full_lines[start:]


def _interrupt_at(iteration):
    """A ``log`` callback that sends this process SIGINT once iteration ``iteration`` is
    printed (train finishes that iteration, writes cp_<iteration>, raises KeyboardInterrupt)."""
    def log(line):
        if f"i = {iteration} /" in line:
            os.kill(os.getpid(), signal.SIGINT)
    return log


@pytest.mark.parametrize("case", ["seeded_dropout", "batchnorm_dropout", "unseeded_dropout"])
def test_interrupted_mid_epoch_resumes_exactly(case, tiny, tmp_path):
    """Stopped at 9 (mid-epoch: live recurrent states, Adam moments of 2 steps since the
    reset at 7), resumed: the same as never stopped. The reference is the same run resumed
    from its cp_5 (uninterrupted from 5 on; the only possible twin of an unseeded run),
    and, when seeded, a fresh run."""
    cp = tmp_path / "run" / "cp"
    with pytest.raises(KeyboardInterrupt):
        train_mod.train(log=_interrupt_at(9), handle_signals=True,
                        **options(tiny, cp, **CASES[case]))
    assert sorted(p.name for p in cp.parent.glob("*.t7")) == ["cp_5.t7", "cp_9.t7"]
    saved = ckpt.load_checkpoint(tmp_path / "run" / "cp_9.t7")
    states = _as_list(saved.resume.table["rnn_states"])
    assert len(states) == 2 and all(s and s["h"].shape == (2, 8) for s in states)
    resumed = train_mod.train(resume_from=str(tmp_path / "run" / "cp_9.t7"),
                              checkpoint_name=str(tmp_path / "resumed" / "cp"))
    reference = train_mod.train(resume_from=str(tmp_path / "run" / "cp_5.t7"),
                                checkpoint_name=str(tmp_path / "reference" / "cp"))
    assert_same_run(reference, resumed)
    assert reference["train_loss_history"][:9] == saved["train_loss_history"]
    if "seed" in CASES[case]:
        assert_same_run(train_mod.train(**options(tiny, tmp_path / "full" / "cp",
                                                  **CASES[case])), resumed)


def test_log_csv_rows_and_append_on_resume(tiny, tmp_path):
    full = train_mod.train(**options(tiny, tmp_path / "full" / "cp", seed=2, dropout=0.3))
    log_csv = tmp_path / "log" / "run.csv"
    opt = options(tiny, tmp_path / "run" / "cp", seed=2, dropout=0.3, log_csv=str(log_csv))
    with pytest.raises(KeyboardInterrupt):
        train_mod.train(log=_interrupt_at(12), handle_signals=True, **opt)
    rows = list(csv.reader(log_csv.open()))
    assert rows[0] == CSV_HEADER and [int(r[0]) for r in rows[1:]] == list(range(1, 13))
    train_mod.train(resume_from=str(tmp_path / "run" / "cp_12.t7"),    # the same -log_csv
                    log_csv=str(log_csv), checkpoint_name=str(tmp_path / "run" / "cp"))
    text = log_csv.read_text()
    assert text.count("i,epoch") == 1
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == CSV_HEADER
    assert [int(r["i"]) for r in rows] == list(range(1, 22))            # appended, no gap
    assert [float(r["loss"]) for r in rows] == full["train_loss_history"]
    for r in rows:
        i = int(r["i"])
        assert float(r["epoch"]) == i / NUM_TRAIN + 1
        assert float(r["learning_rate"]) == 2e-3 * 0.5 ** (i // NUM_TRAIN)
        assert (r["val_loss"] != "") == (i in full["val_loss_history_it"])
    assert [float(r["val_loss"]) for r in rows if r["val_loss"]] == full["val_loss_history"]
    seconds = [float(r["seconds"]) for r in rows]
    assert seconds == sorted(seconds)                 # the clock goes on from the checkpoint


# -- Ctrl-C and SIGTERM on the command line ---------------------------------------------------

def _run_until_signal(tiny, tmp_path, sig, min_rows=8):
    """Start torchrnn-train in a subprocess (a run far too long to finish), send ``sig``
    once its -log_csv shows ``min_rows`` rows; returns (returncode, stdout, stderr)."""
    log_csv = tmp_path / "log.csv"
    opt = options(tiny, tmp_path / "cv" / "cp", seed=6, dropout=0.3, max_epochs=5000,
                  checkpoint_every=0, print_every=1, log_csv=str(log_csv))
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "torchrnn_py.train"] + flags(opt),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if log_csv.exists() and log_csv.read_text().count("\n") > min_rows:
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err, opt


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_writes_checkpoint_and_resume_matches(sig, tiny, tmp_path):
    rc, out, err, opt = _run_until_signal(tiny, tmp_path, sig)
    assert rc == (130 if sig == signal.SIGINT else 143), err       # as every command says
    assert err.splitlines()[-1] == ("torchrnn-train: interrupted" if sig == signal.SIGINT
                                    else "torchrnn-train: terminated")
    assert "Traceback" not in err
    written = sorted((tmp_path / "cv").glob("*.t7"))
    assert len(written) == 1 and len(list((tmp_path / "cv").glob("*.json"))) == 1
    n = int(written[0].stem.split("_")[-1])
    last = out.strip().splitlines()[-1]
    assert last == (f"Interrupted after iteration {n}: wrote {written[0]} "
                    f"(continue with -resume_from {written[0]})")
    assert f"i = {n} / 35000, loss = " in out and f"i = {n + 1} /" not in out
    rows = list(csv.DictReader((tmp_path / "log.csv").open()))
    assert [int(r["i"]) for r in rows] == list(range(1, n + 1))
    # resume (with a shorter run) == the same shorter run never interrupted
    epochs = n // NUM_TRAIN + 2
    resumed = train_mod.train(resume_from=str(written[0]), max_epochs=epochs,
                              checkpoint_name=str(tmp_path / "resumed" / "cp"))
    full = train_mod.train(**dict(opt, max_epochs=epochs, log_csv="",
                                  checkpoint_name=str(tmp_path / "full" / "cp")))
    assert len(full["train_loss_history"]) == epochs * NUM_TRAIN > n
    assert_same_run(full, resumed)
    assert [float(r["loss"]) for r in rows] == full["train_loss_history"][:n]


# -- what cannot be resumed --------------------------------------------------------------------

def _main(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = train_cli.main(argv)
    return rc, out.getvalue(), err.getvalue()


def test_checkpoint_without_resume_state_suggests_init_from(tiny, tmp_path):
    rc, out, err = _main(flags(options(tiny, tmp_path / "cp", resume_from=str(GOLDEN_CP100),
                                       input_json=str(JSON))))
    assert rc == 1
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1, err
    assert str(GOLDEN_CP100) in lines[0] and "-init_from" in lines[0]
    assert "resume" in lines[0] and "Traceback" not in out + err
    with pytest.raises(TorchRNNError, match="-init_from"):
        train_mod.train(resume_from=str(GOLDEN_CP100))


@pytest.mark.parametrize("flag,value", [("batch_size", 1), ("seq_length", 25)])
def test_changing_batch_shape_on_resume_is_one_line(flag, value, tiny, tmp_path):
    train_mod.train(**options(tiny, tmp_path / "cp", seed=1, max_epochs=1))
    rc, out, err = _main(["-resume_from", str(tmp_path / "cp_5.t7"), f"-{flag}", str(value)])
    assert rc == 1
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1 and f"-{flag}" in lines[0] and "resum" in lines[0], err
    assert "Traceback" not in out + err


# -- what the original programs see ----------------------------------------------------------

def test_original_visible_structure_is_untouched(tiny, tmp_path):
    cp = tmp_path / "run" / "cp"
    with pytest.raises(KeyboardInterrupt):
        train_mod.train(log=_interrupt_at(3), handle_signals=True,
                        **options(tiny, cp, seed=1, dropout=0.3, batchnorm=1))
    golden_t7 = read_t7(GOLDEN / "checkpoints" / "lstm_small_cp_159.t7")
    ours = read_t7(tmp_path / "run" / "cp_3.t7")
    assert set(ours) == set(golden_t7) | {ckpt.RESUME_FIELD}
    assert ours["model"].class_name == golden_t7["model"].class_name == "nn.LanguageModel"
    # an independent reader (what Torch7 would see) loads it, resume state and all
    loaded = torchfile.load(str(tmp_path / "run" / "cp_3.t7"))
    assert loaded[b"i"] == 3 and loaded[b"model"].torch_typename() == b"nn.LanguageModel"
    # the JSON twin has exactly the original's keys: no resume state there
    golden_json = json.loads((GOLDEN / "checkpoints" / "lstm_small_cp_159.json").read_text())
    ours_json = json.loads((tmp_path / "run" / "cp_3.json").read_text())
    assert set(ours_json) == set(golden_json)
    assert not any(key.startswith("torchrnn_py") for key in ours_json)
    assert set(golden_json["opt"]) <= set(ours_json["opt"])
    # and the checkpoint still works for -init_from, which ignores the resume state
    started = train_mod.train(init_from=str(tmp_path / "run" / "cp_3.t7"),
                              **{k: v for k, v in options(tiny, tmp_path / "init" / "cp",
                                                          max_epochs=1).items()
                                 if k not in ("rnn_size", "wordvec_size", "num_layers")})
    assert started["i"] == NUM_TRAIN


# -- a resumed checkpoint is checked, not trusted -------------------------------------------

@pytest.fixture(scope="module")
def resumable(tiny, tmp_path_factory):
    """A checkpoint interrupted mid-epoch (live recurrent states, Adam moments), as a raw
    .t7 table to damage, with the options of its run."""
    tmp = tmp_path_factory.mktemp("resumable")
    opt = options(tiny, tmp / "cp", seed=1, max_epochs=2)
    with pytest.raises(KeyboardInterrupt):
        train_mod.train(log=_interrupt_at(3), handle_signals=True, **opt)
    return {"path": tmp / "cp_3.t7", "opt": opt}


def _damaged(resumable, tmp_path, change):
    from torchrnn_py.t7 import write_t7
    table = read_t7(resumable["path"])
    change(table)
    path = tmp_path / "damaged.t7"
    write_t7(path, table)
    return path


def _set_state(table, layer, key, value):
    table[ckpt.RESUME_FIELD]["rnn_states"][layer][key] = value


def _set_key(table, change):
    """Replace the saved Torch7 generator key by ``change(key)``."""
    generator = table[ckpt.RESUME_FIELD]["torch7_generator"]
    generator["key"] = change(generator["key"])


def _key_word(key, value):
    key = key.clone()
    key[5] = value
    return key


def _set_resume(table, key, value):
    table[ckpt.RESUME_FIELD][key] = value


def _one_more_val_it(table):
    """val_loss_history_it one entry longer than val_loss_history."""
    its = table["val_loss_history_it"]
    its[len(its) + 1] = 3.0


DAMAGES = {
    "string_rnn_size": (lambda t: t["opt"].__setitem__("rnn_size", "abc"), "opt.rnn_size"),
    "nan_learning_rate_opt": (lambda t: t["opt"].__setitem__("learning_rate", float("nan")),
                              "opt.learning_rate"),
    "nan_i": (lambda t: t.__setitem__("i", float("nan")), "iteration count"),
    "string_i": (lambda t: t.__setitem__("i", "3"), "iteration count"),
    "missing_i": (lambda t: t.pop("i"), "iteration count"),
    "state_wrong_rows": (lambda t: _set_state(t, 1, "h", torch.zeros(3, 8)), "shape (3, 8)"),
    "state_wrong_width": (lambda t: _set_state(t, 2, "c", torch.zeros(2, 5)), "shape (2, 5)"),
    "state_nan": (lambda t: _set_state(t, 1, "h", torch.full((2, 8), float("nan"))), "NaN"),
    "state_missing_c": (lambda t: t[ckpt.RESUME_FIELD]["rnn_states"][1].pop("c"), "h and c"),
    "state_a_string": (lambda t: _set_state(t, 1, "h", "zeros"), "float tensor"),
    "resume_lr_inf": (lambda t: t[ckpt.RESUME_FIELD].__setitem__("learning_rate",
                                                                 float("inf")), "learning rate"),
    "adam_nan": (lambda t: t[ckpt.RESUME_FIELD]["adam"][1]["m"].fill_(float("nan")),
                 "moment m of parameter 1"),
    "adam_step_nan": (lambda t: t[ckpt.RESUME_FIELD]["adam"][1].__setitem__("step",
                                                                      float("nan")), "step"),
    "cursor_nan": (lambda t: t[ckpt.RESUME_FIELD]["data_cursor"].__setitem__("train",
                                                                       float("nan")), "cursor"),
    "history_string": (lambda t: t["train_loss_history"].__setitem__(1, "x"),
                       "train_loss_history"),
    "elapsed_nan": (lambda t: t[ckpt.RESUME_FIELD].__setitem__("elapsed", float("nan")),
                    "elapsed"),
    # the generator key: 624 words of 32 bits, a state Mersenne Twister can be in
    "key_short": (lambda t: _set_key(t, lambda k: k[:10].clone()), "624 words"),
    "key_empty": (lambda t: _set_key(t, lambda k: k[:0].clone()), "624 words"),
    "key_long": (lambda t: _set_key(t, lambda k: torch.cat([k, k[:376]])), "624 words"),
    "key_negative": (lambda t: _set_key(t, lambda k: _key_word(k, -1)), "0..4294967295"),
    "key_above_32_bits": (lambda t: _set_key(t, lambda k: _key_word(k, 2 ** 32)),
                          "0..4294967295"),
    "key_bytes": (lambda t: _set_key(t, lambda k: k.to(torch.uint8)), "found a torch.Byte"),
    "key_all_zero": (lambda t: _set_key(t, torch.zeros_like), "all zero"),
    # the resume learning rate: what -learning_rate accepts (a float32 for TorchAdam)
    "resume_lr_1e300": (lambda t: _set_resume(t, "learning_rate", 1e300), "learning rate"),
    "resume_lr_above_float32": (lambda t: _set_resume(t, "learning_rate", 1e39),
                                "learning rate"),
    "version_true": (lambda t: _set_resume(t, "version", True), "version"),
    "adam_v_negative": (lambda t: t[ckpt.RESUME_FIELD]["adam"][1]["v"].fill_(-1.0),
                        "moment v of parameter 1"),
    "adam_m_float64_beyond_float32": (
        lambda t: t[ckpt.RESUME_FIELD]["adam"][1].__setitem__(
            "m", t[ckpt.RESUME_FIELD]["adam"][1]["m"].double().fill_(1e300)),
        "moment m of parameter 1"),
    "state_float64_beyond_float32": (
        lambda t: _set_state(t, 1, "h", torch.full((2, 8), 1e300, dtype=torch.float64)),
        "state h of layer 1"),
    # every split's cursor, each inside its split
    "cursor_missing_train": (lambda t: t[ckpt.RESUME_FIELD]["data_cursor"].pop("train"),
                             "no cursor for train"),
    "cursor_missing_val": (lambda t: t[ckpt.RESUME_FIELD]["data_cursor"].pop("val"),
                           "no cursor for val"),
    "cursor_past_the_end": (lambda t: t[ckpt.RESUME_FIELD]["data_cursor"].__setitem__(
        "train", float(NUM_TRAIN)), "data cursor train"),
    "cursor_unknown_split": (lambda t: t[ckpt.RESUME_FIELD]["data_cursor"].__setitem__(
        "bogus", 0.0), "bogus"),
    # histories: lists of numbers, val_loss_history_it whole and as long as val_loss_history
    "history_tensor": (lambda t: t.__setitem__("train_loss_history", torch.zeros(3)),
                       "train_loss_history"),
    "history_number": (lambda t: t.__setitem__("memory_usage", 3.0), "memory_usage"),
    "history_sparse": (lambda t: t.__setitem__("train_loss_history", {1: 4.0, 3: 3.9}),
                       "train_loss_history"),
    "history_it_fraction": (lambda t: t["val_loss_history_it"].__setitem__(
        len(t["val_loss_history_it"]) + 1, 2.5), "val_loss_history_it"),
    "history_it_longer": (_one_more_val_it, "val_loss_history_it"),
    # the architecture the saved opt claims is the stored model's
    "opt_model_type_gru": (lambda t: t["opt"].__setitem__("model_type", "gru"),
                           "opt.model_type"),
    "opt_rnn_size_other": (lambda t: t["opt"].__setitem__("rnn_size", 16.0), "opt.rnn_size"),
    "opt_dropout_other": (lambda t: t["opt"].__setitem__("dropout", 0.5), "opt.dropout"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_resume_field_is_one_line_naming_the_file(damage, resumable, tmp_path,
                                                            capsys):
    change, expected = DAMAGES[damage]
    path = _damaged(resumable, tmp_path, change)
    rc = train_cli.main(["-resume_from", str(path), "-checkpoint_name", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert rc == 1 and "Traceback" not in out + err
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"torchrnn-train: error: {path}: ") and expected in lines[0]
    assert not list(tmp_path.glob("out_*"))


def test_moments_and_states_stored_with_zero_strides_resume_as_their_values(resumable,
                                                                           tmp_path):
    """A .t7 may store a tensor with stride 0 (one value seen everywhere); resumed, it is
    the value it shows, updated in place like any other: the same run as the plain copy."""
    def one_value(strided):
        def change(table):
            for (holder, key), tensor in _zero_strided_targets(table):
                value = tensor.reshape(-1)[:1].expand(tensor.shape)       # strides 0
                holder[key] = value if strided else value.clone()
        return change
    runs = _resumed_runs(resumable, tmp_path, one_value(True), one_value(False))
    assert runs[0]["train_loss_history"] == runs[1]["train_loss_history"]
    a, b = runs[0]["model"].state_dict(), runs[1]["model"].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_double_and_half_moments_and_states_resume_as_their_float32_values(resumable,
                                                                           tmp_path):
    """A DoubleTensor or HalfTensor recurrent state or Adam moment is taken at the model's
    float32 (it used to reach the LSTM as it was and raise a traceback): the same run as
    the one resumed from a checkpoint holding the float32 conversions themselves."""
    def converted(to_float32):
        def change(table):
            resume = table[ckpt.RESUME_FIELD]
            wide = {"h": resume["rnn_states"][1]["h"].double() + 1e-12,   # not a float32
                    "c": resume["rnn_states"][2]["c"].half(),
                    "m": resume["adam"][1]["m"].double() * (1 + 1e-12),
                    "v": resume["adam"][2]["v"].half()}
            where = {"h": resume["rnn_states"][1], "c": resume["rnn_states"][2],
                     "m": resume["adam"][1], "v": resume["adam"][2]}
            for key, value in wide.items():
                where[key][key] = value.float() if to_float32 else value
        return change
    runs = _resumed_runs(resumable, tmp_path, converted(False), converted(True))
    assert_same_run(runs[0], runs[1])
    plain = train_mod.train(resume_from=str(resumable["path"]),
                            checkpoint_name=str(tmp_path / "plain" / "out"))
    assert plain["train_loss_history"] != runs[0]["train_loss_history"]  # the half c counts


@pytest.mark.parametrize("flag,value", [("model_type", "gru"), ("rnn_size", 16),
                                        ("wordvec_size", 8), ("num_layers", 1),
                                        ("dropout", 0.5), ("batchnorm", 1)])
def test_changing_the_model_on_resume_is_one_line(flag, value, resumable, tmp_path, capsys):
    """The resumed model is the stored one: an architecture flag that disagrees with it is
    refused (it used to be ignored, and recorded in the new checkpoints' opt)."""
    rc = train_cli.main(["-resume_from", str(resumable["path"]), f"-{flag}", str(value),
                         "-checkpoint_name", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert rc == 1 and "Traceback" not in out + err
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1, err
    assert lines[0] == (f"torchrnn-train: error: -{flag} cannot change when resuming "
                        f"({_model_value(flag)} in {resumable['path']}, {value} given)")
    assert not list(tmp_path.glob("out_*"))


def _model_value(flag):
    return {"model_type": "lstm", "rnn_size": 8, "wordvec_size": 4, "num_layers": 2,
            "dropout": 0, "batchnorm": 0}[flag]


def test_resumed_architecture_is_the_stored_models(resumable):
    """Flags that agree with the model are taken; an architecture option the saved opt
    lacks comes from the model, not from train's defaults (rnn_size 128, ...)."""
    checkpoint = ckpt.load_checkpoint(resumable["path"])
    for name in ("rnn_size", "wordvec_size", "num_layers"):
        del checkpoint.opt[name]
    merged = train_mod.resumed_options(checkpoint, "cp_3.t7", {"model_type": "lstm",
                                                               "batchnorm": 0, "dropout": 0})
    assert (merged["rnn_size"], merged["wordvec_size"], merged["num_layers"]) == (8, 4, 2)
    assert (merged["model_type"], merged["batchnorm"], merged["dropout"]) == ("lstm", 0, 0)


def _resumed_runs(resumable, tmp_path, *changes):
    """The runs resumed from the checkpoint as each of ``changes`` leaves it, in order."""
    runs = []
    for n, change in enumerate(changes):
        path = _damaged(resumable, tmp_path, change)
        runs.append(train_mod.train(resume_from=str(path),
                                    checkpoint_name=str(tmp_path / f"run{n}" / "out")))
    return runs


def _zero_strided_targets(table):
    """(where, tensor) of Adam's m of parameter 1 and layer 1's saved h."""
    resume = table[ckpt.RESUME_FIELD]
    return [((resume["adam"][1], "m"), resume["adam"][1]["m"]),
            ((resume["rnn_states"][1], "h"), resume["rnn_states"][1]["h"])]


def test_resumed_checkpoints_go_where_this_command_line_says(resumable, tmp_path, monkeypatch,
                                                             capsys):
    elsewhere = tmp_path / "elsewhere" / "deep"
    path = _damaged(resumable, tmp_path, lambda t: t["opt"].update(
        checkpoint_name=str(elsewhere / "cp"), log_csv=str(tmp_path / "elsewhere.csv")))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    rc = train_cli.main(["-resume_from", str(path)])          # default -checkpoint_name
    err = capsys.readouterr().err
    assert rc == 0, err
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "elsewhere.csv").exists()
    assert sorted(p.name for p in (work / "cv").iterdir()) == \
        sorted(f"checkpoint_{i}.{ext}" for i in (5, 10, 14) for ext in ("json", "t7"))
    assert err.splitlines()[0] == f"wrote {os.path.join('cv', 'checkpoint_5.t7')}"
    # the data and the training options still come from the checkpoint
    saved = ckpt.read_checkpoint_json(work / "cv" / "checkpoint_14.json")["opt"]
    assert saved["input_h5"] == resumable["opt"]["input_h5"] and saved["rnn_size"] == 8
    assert saved["checkpoint_name"] == "cv/checkpoint" and saved["log_csv"] == ""


def test_resume_with_a_renumbered_vocabulary_maps_it(resumable, tiny, tmp_path):
    import h5py
    import numpy as np
    from torchrnn_py.vocab import read_vocab, write_vocab
    vocab = read_vocab(JSON)
    tokens = list(reversed(vocab.tokens))                 # same 62 tokens, other ids
    h5_path = tmp_path / "reversed.h5"
    with h5py.File(tiny, "r") as src, h5py.File(h5_path, "w") as dst:
        for split in ("train", "val", "test"):
            dst.create_dataset(split, data=(63 - src[split][()]).astype(np.uint8))
    write_vocab(tmp_path / "reversed.json", tokens)
    plain = train_mod.train(resume_from=str(resumable["path"]),
                            checkpoint_name=str(tmp_path / "a" / "cp"))
    notes = []
    mapped = train_mod.train(resume_from=str(resumable["path"]), warn=notes.append,
                             input_h5=str(h5_path), input_json=str(tmp_path / "reversed.json"),
                             checkpoint_name=str(tmp_path / "b" / "cp"))
    assert_same_run(plain, mapped)
    assert notes[0].startswith("the data's 62 tokens are mapped to the model's vocabulary")


def _as_list(value):
    """A Lua array read back (a table with keys 1..n) or a list, as a list."""
    return [value[k] for k in sorted(value)] if isinstance(value, dict) else list(value)
