"""torchrnn-convert: a char-rnn checkpoint written as a torch-rnn one. The file is read back
with torchfile (an independent reader) and compared, class by class and field by field, with
checkpoints the original torch-rnn wrote; its probabilities, recomputed from the raw tensors
as torch-rnn's modules compute them, are char-rnn's own (its forward dumps)."""
import contextlib
import io
import json
import os

import h5py
import numpy as np
import pytest
import torch
import torchfile

from torchrnn_py import load_model
from torchrnn_py.cli import convert as convert_cli
from torchrnn_py.t7 import read_t7

from conftest import FIXTURES, GOLDEN
from test_checkpoint import _fields, _tf_modules, _walk, reference_probs

CHARRNN = FIXTURES / "charrnn"
# char-rnn fixture -> the torch-rnn checkpoint of the same layer type (tests/fixtures/golden)
GOLDEN_OF = {"lstm_2x64": "lstm_small_cp_159", "rnn_2x64": "rnn_small_cp_159",
             "lstm_2x48_dropout0.5": "lstm_bn_dropout_cp_159"}


def _convert(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = convert_cli.main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("converted")
    paths = {}
    for name in GOLDEN_OF:
        rc, out, err = _convert(CHARRNN / f"{name}.t7", tmp / f"{name}.t7")
        assert rc == 0, err
        assert err.splitlines() == [f"wrote {tmp / name}.t7", f"wrote {tmp / name}.json"]
        paths[name] = tmp / f"{name}.t7"
    return paths


@pytest.mark.parametrize("name", list(GOLDEN_OF))
def test_converted_file_is_structurally_torchrnns(name, converted):
    golden = torchfile.load(str(GOLDEN / "checkpoints" / f"{GOLDEN_OF[name]}.t7"))
    ours = torchfile.load(str(converted[name]))
    assert set(ours) - set(golden) == {b"torchrnn_py_charrnn_opt"}
    g_lm, o_lm = golden[b"model"], ours[b"model"]
    assert o_lm._typename == b"nn.LanguageModel" and _fields(o_lm) == _fields(g_lm)
    golden_fields = {m._typename: _fields(m) for m in _tf_modules(g_lm)}
    for module in _tf_modules(o_lm):
        assert _fields(module) == golden_fields[module._typename], module._typename
        for key, value in module._obj.items():
            if isinstance(value, np.ndarray) and value.dtype.kind == "f":
                assert value.dtype == np.float32, (module._typename, key)
    classes = [m._typename for m in _tf_modules(o_lm)]
    layer = b"nn.LSTM" if name.startswith("lstm") else b"nn.VanillaRNN"
    dropout = [b"nn.Dropout"] if "dropout" in name else []
    assert classes == [b"nn.LookupTable"] + ([layer] + dropout) * 2 + \
        [b"nn.View", b"nn.Linear", b"nn.View"]
    versions = {(o.class_name, o.version) for o in _walk(read_t7(converted[name]), [])}
    golden_versions = dict((o.class_name, o.version) for o in
                           _walk(read_t7(GOLDEN / "checkpoints" / f"{GOLDEN_OF[name]}.t7"), []))
    assert all(golden_versions[c] == v for c, v in versions)


@pytest.mark.parametrize("name", list(GOLDEN_OF))
def test_converted_file_gives_charrnns_probabilities(name, converted):
    """torch-rnn's forward pass over the converted file's raw tensors (torchfile, float64)
    gives the next-byte probabilities char-rnn's dump recorded."""
    with h5py.File(CHARRNN / f"{name}.forward.h5", "r") as f:
        ids, logprobs = f["input"][()], f["logprobs"][()]
    lm = torchfile.load(str(converted[name]))[b"model"]
    for t in (0, 17, 99):
        expected = np.exp(logprobs[t])
        np.testing.assert_allclose(reference_probs(lm, ids[:t + 1]), expected, rtol=0,
                                   atol=1e-5)


def test_converted_json_keeps_the_histories_and_options(converted):
    saved = json.loads(converted["lstm_2x64"].with_suffix(".json").read_text())
    original = read_t7(CHARRNN / "lstm_2x64.t7")
    assert saved["i"] == 380
    assert saved["train_loss_history"] == pytest.approx(
        [original["train_losses"][k] for k in range(1, 381)], rel=1e-12)
    assert saved["val_loss_history"] == pytest.approx([original["val_loss"]], rel=1e-12)
    assert saved["val_loss_history_it"] == [380]
    assert (saved["opt"]["model_type"], saved["opt"]["rnn_size"], saved["opt"]["num_layers"],
            saved["opt"]["wordvec_size"]) == ("lstm", 64, 2, 62)
    kept = read_t7(converted["lstm_2x64"])["torchrnn_py_charrnn_opt"]
    assert kept["savefile"] == "lstm_2x64" and kept["learning_rate"] == 0.005


def test_refusals_leave_files_alone(tmp_path, converted):
    source = CHARRNN / "rnn_2x64.t7"
    before = source.read_bytes()
    rc, out, err = _convert(source, source)
    assert rc == 1 and out == "" and "would overwrite the input checkpoint" in err
    assert source.read_bytes() == before
    keep = tmp_path / "keep.t7"
    keep.write_bytes(b"mine")
    rc, out, err = _convert(GOLDEN / "checkpoints" / "lstm_small_cp_159.t7", keep)
    assert rc == 1 and "a torch-rnn checkpoint, not a char-rnn one" in err
    assert len(err.splitlines()) == 1 and keep.read_bytes() == b"mine"
    assert not (tmp_path / "keep.json").exists()
    rc, _, err = _convert(source, tmp_path / "out.json")
    assert rc == 1 and "would overwrite the output checkpoint" in err
    rc, _, err = _convert(tmp_path / "missing.t7", tmp_path / "x.t7")
    assert rc == 1 and "checkpoint not found" in err and not (tmp_path / "x.t7").exists()


def test_a_gru_converts_and_reads_back(tmp_path):
    """The original torch-rnn has no GRU: the file gets this package's nn.GRU (the layout of
    the forks' GRU.lua), a note says so, and it reads back to char-rnn's probabilities."""
    rc, out, err = _convert(CHARRNN / "gru_2x64.t7", tmp_path / "gru.t7")
    assert rc == 0 and "the original torch-rnn has no GRU layer" in err
    classes = [o.class_name for o in _walk(read_t7(tmp_path / "gru.t7"), [])]
    assert classes.count("nn.GRU") == 2 and "nn.LSTM" not in classes
    model = load_model(str(tmp_path / "gru.t7"))
    with h5py.File(CHARRNN / "gru_2x64.forward.h5", "r") as f:
        ids, logprobs = f["input"][()], f["logprobs"][()]
    with torch.no_grad():
        scores = model(torch.from_numpy(ids).view(1, -1))[0]
    np.testing.assert_allclose(torch.log_softmax(scores.double(), -1).numpy(), logprobs,
                               rtol=0, atol=1e-5)


def test_out_that_is_not_a_file_or_whose_json_is_not_a_checkpoints_is_refused(tmp_path):
    """A FIFO (or a device) as OUT would get a new OUT.json beside it; a .json already there
    that is not a checkpoint's (preprocess's vocabulary, say) would be lost."""
    source = CHARRNN / "rnn_2x64.t7"
    fifo = tmp_path / "pipe.t7"
    os.mkfifo(fifo)
    rc, _, err = _convert(source, fifo)
    assert rc == 1 and "OUT must be a file name, found a FIFO" in err
    assert not (tmp_path / "pipe.json").exists()
    vocab = tmp_path / "data.json"
    vocab.write_text('{"idx_to_token": {"1": "a"}, "token_to_idx": {"a": 1}}')
    rc, _, err = _convert(source, tmp_path / "data.t7")
    assert rc == 1 and "exists and is not a checkpoint's JSON" in err
    assert json.loads(vocab.read_text())["token_to_idx"] == {"a": 1}
    assert not (tmp_path / "data.t7").exists()
    rc, _, err = _convert(source, tmp_path / "ok.t7")             # a checkpoint's JSON is
    assert rc == 0 and _convert(source, tmp_path / "ok.t7")[0] == 0   # replaced


def test_non_finite_iteration_or_losses_are_not_converted(tmp_path):
    from torchrnn_py.t7 import write_t7
    root = read_t7(CHARRNN / "rnn_2x64.t7")
    root["i"] = float("inf")
    write_t7(tmp_path / "inf.t7", root)
    rc, _, err = _convert(tmp_path / "inf.t7", tmp_path / "out.t7")
    assert rc == 1 and "hold NaN, infinity or a fraction" in err
    assert not (tmp_path / "out.t7").exists() and not (tmp_path / "out.json").exists()


def test_sigterm_stops_convert_as_ctrl_c_does(monkeypatch):
    """Killed mid-write, convert stops with 'terminated' and 143; the atomic writer then
    removes its temporary files, as on Ctrl-C (our handler stands in for the default)."""
    import signal
    previous = signal.signal(signal.SIGTERM, lambda *args: None)
    try:
        def killed(*args, **kwargs):
            signal.raise_signal(signal.SIGTERM)
        monkeypatch.setattr(convert_cli, "convert", killed)
        rc, _, err = _convert("in.t7", "out.t7")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert rc == 143 and err == "torchrnn-convert: terminated\n"
