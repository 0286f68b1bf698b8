"""eval.lua reproduced: the loss of a checkpoint on one split of its data, with the
original's lines, checked against the validation loss that train.lua itself recorded."""
import io
import json
import math
import re
import sys

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import FIXTURES, GOLDEN, LEGACY, PREPROCESS, make_tiny_h5
from torchrnn_py.cli import evaluate as eval_cli
from torchrnn_py import evaluate as eval_mod
from torchrnn_py.checkpoint import load_checkpoint
from torchrnn_py.errors import TorchRNNError
from torchrnn_py.preprocess import preprocess

CP = GOLDEN / "checkpoints" / "lstm_small_cp_159.t7"
CP_JSON = GOLDEN / "checkpoints" / "lstm_small_cp_159.json"
H5 = GOLDEN / "shakespeare200k.h5"
JSON = GOLDEN / "shakespeare200k.json"
CPU = ["-gpu", "-1"]
LOSS_LINE = re.compile(r"^(train|val|test) loss = (\d+\.\d{6})$")


def run(argv, capsys):
    status = eval_cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def num_batches(num, N, T):
    """Batches of a split of ``num`` tokens (docs/compatibility.md, "data loader"): the batch size shrinks to
    floor((num-1)/T) when N*T > num-1; extra = num mod N*T (N*T when 0); the rest is cut
    into (N, T) blocks."""
    if N * T > num - 1:
        N = (num - 1) // T
    extra = num % (N * T) or N * T
    return (num - extra) // (N * T)


def split_size(h5_path, split):
    with h5py.File(h5_path, "r") as f:
        return f[split].shape[0]


def checkpoint_json():
    return json.loads(CP_JSON.read_text())


def check_eval_output(out, split, n):
    """The original's lines: the mode line, one line per batch, the loss. Returns the loss."""
    lines = out.splitlines()
    assert lines[0] == "Running in CPU mode"
    assert lines[1:-1] == [f"{split} batch {j} / {n}" for j in range(1, n + 1)]
    match = LOSS_LINE.match(lines[-1])
    assert match and match.group(1) == split, lines[-1]
    return float(match.group(2))


def test_val_loss_equals_the_one_train_lua_recorded(capsys):
    saved = checkpoint_json()
    N, T = saved["opt"]["batch_size"], saved["opt"]["seq_length"]
    assert (N, T) == (20, 50)
    num = split_size(H5, "val")
    assert num == 20000
    n = num_batches(num, N, T)
    assert n == 19                                    # 20000 = 20*1000, extra = 1000
    status, out, err = run(["-checkpoint", CP, "-input_h5", H5, "-split", "val"] + CPU,
                           capsys)
    assert status == 0 and err == ""
    loss = check_eval_output(out, "val", n)
    # train.lua validated at i = 159 exactly this way (eval mode, zero states, every batch)
    assert saved["val_loss_history_it"][-1] == 159
    assert loss == pytest.approx(saved["val_loss_history"][-1], abs=1e-4)


def manual_split_loss(model, h5_path, split, N, T):
    """The mean over batches of the mean cross-entropy, with states carried from batch to
    batch (row n of every batch continues row n of the previous one), from the data alone."""
    with h5py.File(h5_path, "r") as f:
        data = f[split][()].astype(np.int64)
    num = data.shape[0]
    if N * T > num - 1:
        N = (num - 1) // T
    extra = num % (N * T) or N * T
    x = data[:num - extra].reshape(N, -1, T)
    y = data[1:num - extra + 1].reshape(N, -1, T)
    model.eval()
    model.reset_states()
    losses = []
    with torch.no_grad():
        for b in range(x.shape[1]):
            scores = model(torch.from_numpy(x[:, b]))
            V = scores.shape[-1]
            losses.append(float(F.cross_entropy(scores.reshape(-1, V).double(),
                                                torch.from_numpy(y[:, b]).reshape(-1) - 1)))
    model.reset_states()
    return sum(losses) / len(losses)


@pytest.mark.parametrize("split", ["test", "train"])
def test_other_splits(split, capsys):
    n = num_batches(split_size(H5, split), 20, 50)
    assert n == {"test": 19, "train": 159}[split]
    status, out, err = run(["-checkpoint", CP, "-input_h5", H5, "-split", split] + CPU, capsys)
    assert status == 0 and err == ""
    loss = check_eval_output(out, split, n)
    assert 0 < loss < math.log(62)
    if split == "test":
        model = load_checkpoint(str(CP))["model"]
        assert loss == pytest.approx(manual_split_loss(model, H5, "test", 20, 50), abs=2e-5)


def test_library_returns_the_printed_value(capsys):
    loss = eval_mod.evaluate(checkpoint=str(CP), input_h5=str(H5), split="val", gpu=-1)
    assert isinstance(loss, float)
    assert capsys.readouterr().out == ""              # quiet unless verbose
    status, out, _ = run(["-checkpoint", CP, "-input_h5", H5, "-split", "val"] + CPU, capsys)
    assert status == 0
    assert out.splitlines()[-1] == "val loss = %f" % loss


def test_stored_relative_input_h5_is_used_from_its_directory(monkeypatch, capsys):
    assert load_checkpoint(str(CP))["opt"]["input_h5"] == "shakespeare200k.h5"
    monkeypatch.chdir(GOLDEN)
    status, out, err = run(["-checkpoint", "checkpoints/lstm_small_cp_159.t7"] + CPU, capsys)
    assert status == 0 and err == ""
    loss = check_eval_output(out, "val", 19)
    assert loss == pytest.approx(checkpoint_json()["val_loss_history"][-1], abs=1e-4)


def test_stored_input_h5_missing_elsewhere_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status, _, err = run(["-checkpoint", CP] + CPU, capsys)
    assert status != 0
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert "-input_h5" in lines[0] and "shakespeare200k.h5" in lines[0]


def test_matching_input_json_passes(capsys):
    status, out, err = run(["-checkpoint", CP, "-input_h5", H5, "-input_json", JSON] + CPU,
                           capsys)
    assert status == 0 and err == ""
    check_eval_output(out, "val", 19)


def test_other_vocabulary_is_one_line(capsys):
    other = PREPROCESS / "li_qing_zhao.json"
    status, out, err = run(["-checkpoint", CP, "-input_h5", H5, "-input_json", other] + CPU,
                           capsys)
    assert status != 0
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert "li_qing_zhao.json" in lines[0] and "vocabulary" in lines[0]
    assert "loss" not in out


@pytest.mark.parametrize("argv, pattern", [
    (["-checkpoint", str(CP), "-input_h5", str(H5), "-split", "bogus"], r"bogus"),
    (["-checkpoint", "/nonexistent/cp.t7", "-input_h5", str(H5)], r"cp\.t7"),
    (["-checkpoint", str(CP), "-input_h5", "/nonexistent/data.h5"], r"data\.h5"),
    (["-checkpoint", str(CP), "-no_such_flag", "1"], r"no_such_flag"),
], ids=["split_bogus", "missing_checkpoint", "missing_h5", "unknown_flag"])
def test_bad_input_is_one_line(argv, pattern, capsys):
    status, out, err = run(argv + CPU, capsys)
    assert status != 0
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert re.search(pattern, lines[0]), lines[0]
    assert "loss =" not in out


# -- legacy checkpoints --------------------------------------------------------------------

def tiny_dataset(path, model, rng, tokens_per_split=301):
    """An HDF5 file (/train, /val, /test) of token ids drawn from the model's vocabulary,
    in the dtype preprocess would choose."""
    V = model.vocab_size
    dtype = np.uint8 if V <= 255 else np.uint32
    with h5py.File(path, "w") as f:
        for split in ("train", "val", "test"):
            f.create_dataset(split, data=rng.integers(1, V + 1, tokens_per_split).astype(dtype))
    return dtype


@pytest.mark.parametrize("name", ["dna_eli_checkpoint_1000", "placenames_checkpoint_8450",
                                  "liqingzhao_checkpoint_1050"])
def test_legacy_checkpoints_evaluate_on_tiny_data(name, tmp_path, capsys):
    path = LEGACY / f"{name}.t7"
    checkpoint = load_checkpoint(str(path))
    model = checkpoint["model"]
    N, T = checkpoint["opt"]["batch_size"], checkpoint["opt"]["seq_length"]
    h5_path = tmp_path / "tiny.h5"
    dtype = tiny_dataset(h5_path, model, np.random.default_rng(len(name)))
    assert (dtype == np.uint32) == (model.vocab_size > 255)
    status, out, err = run(["-checkpoint", path, "-input_h5", h5_path, "-split", "val"] + CPU,
                           capsys)
    assert status == 0 and err == (f"torchrnn-eval: warning: no -input_json, and no "
                                   f"vocabulary beside {h5_path}: its ids are taken to be "
                                   f"the model's, unchecked\n")
    n = num_batches(301, N, T)
    lines = out.splitlines()
    assert N * T > 300                                # the loader must shrink the batch
    assert f"Not enough val data, reducing batch size to {300 // T}" in lines
    assert f"val batch {n} / {n}" in lines
    match = LOSS_LINE.match(lines[-1])
    assert match, lines[-1]
    loss = float(match.group(2))
    assert math.isfinite(loss) and loss > 0
    assert loss == pytest.approx(manual_split_loss(model, h5_path, "val", N, T), abs=2e-5)


def test_chinese_checkpoint_on_its_real_data(capsys):
    # preprocess/li_qing_zhao.* is the original preprocess's output for this model's corpus
    path = LEGACY / "liqingzhao_checkpoint_1050.t7"
    h5_path = PREPROCESS / "li_qing_zhao.h5"
    status, out, err = run(["-checkpoint", path, "-input_h5", h5_path, "-input_json",
                            PREPROCESS / "li_qing_zhao.json", "-split", "val"] + CPU, capsys)
    assert status == 0 and err == ""
    n = num_batches(split_size(h5_path, "val"), 10, 50)
    loss = check_eval_output(out, "val", n)
    assert loss < math.log(1037)                      # it learned something of its corpus


def test_gpu_on_a_cpu_only_machine_warns_once(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)   # even on a GPU host
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    status, out, err = run(["-checkpoint", CP, "-input_h5", H5, "-gpu", "0"], capsys)
    assert status == 0
    lines = err.splitlines()
    assert len(lines) == 1 and "GPU" in lines[0] and "Traceback" not in err
    loss = check_eval_output(out, "val", 19)
    assert loss == pytest.approx(checkpoint_json()["val_loss_history"][-1], abs=1e-4)


def test_bare_model_needs_and_accepts_batch_size_and_seq_length(tmp_path, capsys):
    # torch.save(file, model) alone: no opt to rebuild the loader from
    from torchrnn_py.t7 import read_t7, write_t7
    bare = tmp_path / "bare.t7"
    write_t7(str(bare), read_t7(str(CP))["model"])
    status, _, err = run(["-checkpoint", bare, "-input_h5", H5] + CPU, capsys)
    assert status != 0 and len(err.strip().splitlines()) == 1 and "-batch_size" in err
    status, out, _ = run(["-checkpoint", bare, "-input_h5", H5, "-batch_size", 20,
                          "-seq_length", 50] + CPU, capsys)
    assert status == 0
    status, reference, _ = run(["-checkpoint", CP, "-input_h5", H5] + CPU, capsys)
    assert out.splitlines()[-1] == reference.splitlines()[-1]


def test_a_bad_size_flag_is_blamed_on_the_flag(capsys):
    status, _, err = run(["-checkpoint", CP, "-input_h5", H5, "-batch_size", -3] + CPU, capsys)
    assert status != 0 and len(err.strip().splitlines()) == 1
    assert "-batch_size must be a positive integer" in err


def test_a_renumbered_vocabulary_is_mapped_by_token(tmp_path, capsys):
    # the same 62 tokens with other ids (reversed): the same counts, a different table
    from torchrnn_py.vocab import read_vocab, write_vocab
    tokens = list(reversed(read_vocab(JSON).tokens))
    h5_path, json_path = tmp_path / "reversed.h5", tmp_path / "reversed.json"
    with h5py.File(H5, "r") as src, h5py.File(h5_path, "w") as dst:
        for split in ("train", "val", "test"):
            dst.create_dataset(split, data=(63 - src[split][()]).astype(np.uint8))
    write_vocab(json_path, tokens)
    status, out, err = run(["-checkpoint", CP, "-input_h5", h5_path, "-input_json", json_path]
                           + CPU, capsys)
    assert status == 0
    assert err.splitlines() == ["torchrnn-eval: warning: the data's 62 tokens are mapped to "
                                "the model's vocabulary of 62 tokens (ids by token)"]
    status, reference, _ = run(["-checkpoint", CP, "-input_h5", H5] + CPU, capsys)
    assert out.splitlines()[-1] == reference.splitlines()[-1]


def test_the_vocabulary_beside_the_data_is_checked_without_input_json(tmp_path, capsys):
    """X.json beside X.h5 is the data's vocabulary even when -input_json is not given: a
    char-rnn model on a byte dataset is mapped by token, not read by position."""
    text = (FIXTURES.parent.parent / "torchrnn_py" / "corpus" / "tiny-shakespeare.txt")
    (tmp_path / "in.txt").write_bytes(text.read_bytes()[:3000])
    preprocess(str(tmp_path / "in.txt"), str(tmp_path / "d.h5"), str(tmp_path / "d.json"),
               encoding="bytes")
    status, out, err = run(["-checkpoint", FIXTURES / "charrnn" / "rnn_2x64.t7", "-input_h5",
                            tmp_path / "d.h5", "-batch_size", "1", "-seq_length", "50"] + CPU,
                           capsys)
    assert status == 0 and "mapped to the model's vocabulary of 62 tokens" in err
    with_json = run(["-checkpoint", FIXTURES / "charrnn" / "rnn_2x64.t7", "-input_h5",
                     tmp_path / "d.h5", "-input_json", tmp_path / "d.json", "-batch_size", "1",
                     "-seq_length", "50"] + CPU, capsys)
    assert with_json[1].splitlines()[-1] == out.splitlines()[-1]


def test_a_stdout_that_is_the_data_is_refused_only_when_lines_are_printed(tmp_path,
                                                                          monkeypatch):
    """evaluate(verbose=True) prints eval.lua's lines: a stdout that is its data (known only
    once the checkpoint is read) is refused before the first; verbose=False prints nothing
    and is not refused."""
    h5 = make_tiny_h5(tmp_path)
    before = h5.read_bytes()
    flags = dict(checkpoint=str(GOLDEN / "checkpoints" / "lstm_small_cp_159.t7"), gpu=-1,
                 input_h5=str(h5), input_json=str(GOLDEN / "shakespeare200k.json"))
    with open(h5, "r+b") as same:
        monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(same, write_through=True))
        loss = eval_mod.evaluate(verbose=False, **flags)
        with pytest.raises(TorchRNNError, match=r"tiny\.h5: stdout is this input h5"):
            eval_mod.evaluate(verbose=True, **flags)
        monkeypatch.undo()
    assert math.isfinite(loss) and h5.read_bytes() == before
