"""torchrnn-charrnn-train against char-rnn's own train.lua runs (tests/fixtures/charrnn: the
four *.train.log files, their checkpoints' full-precision train_losses and val_loss, and the
data_public/ files its loader wrote): the data folder, the printed lines, the losses of the
first iterations, the validation loss, -init_from, and bad input refused in one line."""
import functools
import hashlib
import os
import re

import numpy as np
import pytest
import torch

from torchrnn_py.charrnn import train as ctrain
from torchrnn_py.charrnn.data import (CharSplitLoader, load_data_dir, prepare_data_dir,
                                      split_fractions)
from torchrnn_py.charrnn.graph import read_graph
from torchrnn_py.charrnn.net import CharRNNNet, evaluate_batches, forward_backward
from torchrnn_py.charrnn import load_charrnn
from torchrnn_py.cli import charrnn_sample
from torchrnn_py.cli import charrnn_train as cli
from torchrnn_py.errors import TorchRNNError
from torchrnn_py.rng import TorchGenerator
from torchrnn_py.t7 import read_t7, write_t7

from conftest import FIXTURES

CHARRNN = FIXTURES / "charrnn"
CORPUS = FIXTURES.parent.parent / "torchrnn_py" / "corpus" / "tiny-shakespeare.txt"
#: The fixture runs: name -> (flags besides the common ones, iterations checked here).
RUNS = {
    "lstm_2x64": (dict(model="lstm", rnn_size=64), 40),
    "gru_2x64": (dict(model="gru", rnn_size=64), 40),
    "rnn_2x64": (dict(model="rnn", rnn_size=64), 100),
    "lstm_2x48_dropout0.5": (dict(model="lstm", rnn_size=48, dropout=0.5), 40),
}
COMMON = dict(num_layers=2, batch_size=20, seq_length=50, learning_rate=5e-3, max_epochs=2,
              eval_val_every=380, seed=123, gpuid=-1)


def _public_dir(tmp_path):
    """data/public of the fixture commands: the first 200,000 bytes of tiny-shakespeare."""
    folder = tmp_path / "public"
    folder.mkdir()
    (folder / "input.txt").write_bytes(CORPUS.read_bytes()[:200000])
    return folder


@functools.lru_cache(maxsize=None)
def _fixture(name):
    root = read_t7(CHARRNN / f"{name}.t7")
    log = (CHARRNN / f"{name}.train.log").read_text().split("\n")
    return root, log


def _no_time(line):
    return re.sub(r"time/batch = [0-9.]+s", "time/batch = Xs", line)


def _train(data_dir, tmp_path, **flags):
    lines, saved = [], []
    options = dict(COMMON, data_dir=str(data_dir), checkpoint_dir=str(tmp_path / "cv"))
    options.update(flags)
    result = ctrain.train_charrnn(log=lines.append,
                                  save_checkpoint=lambda p, f: saved.append((p, f)),
                                  **options)
    return result, lines, saved


# -- the data folder -------------------------------------------------------------------------

def test_data_folder_is_what_charrnns_loader_writes(tmp_path):
    folder = _public_dir(tmp_path)
    lines = []
    loader = load_data_dir(str(folder), 20, 50, split_fractions(0.95, 0.05), lines.append)
    assert read_t7(folder / "vocab.t7") == read_t7(CHARRNN / "data_public" / "vocab.t7")
    assert torch.equal(read_t7(folder / "data.t7"), read_t7(CHARRNN / "data_public" / "data.t7"))
    _, log = _fixture("lstm_2x64")
    assert [line + "\t" for line in lines] == \
        [line.replace("data/public", str(folder)) for line in log[:10]]
    assert loader.split_sizes == [190, 10, 0] and loader.vocab_size == 62
    x, y = loader.x_batches[0], loader.y_batches[0]
    data = read_t7(folder / "data.t7").long()
    assert x.shape == (20, 50) and torch.equal(x[1], data[10000:10050])
    assert torch.equal(y[:, :-1], x[:, 1:]) and int(loader.y_batches[-1][-1, -1]) == int(data[0])


def test_data_folder_is_reused_and_remade_when_input_is_newer(tmp_path):
    folder = _public_dir(tmp_path)
    prepare_data_dir(str(folder))
    lines = []
    prepare_data_dir(str(folder), lines.append)
    assert lines == []                                   # reused: nothing printed
    later = os.stat(folder / "data.t7").st_mtime + 5
    os.utime(folder / "input.txt", (later, later))
    prepare_data_dir(str(folder), lines.append)
    assert lines[0] == "vocab.t7 or data.t7 detected as stale. Re-running preprocessing..."
    assert lines[-1] == f"saving {folder / 'data.t7'}"


def test_truncation_batches_and_three_splits(tmp_path):
    folder = tmp_path / "small"
    folder.mkdir()
    (folder / "input.txt").write_bytes(CORPUS.read_bytes()[:907])
    lines = []
    loader = load_data_dir(str(folder), 2, 10, split_fractions(0.8, 0.1), lines.append)
    assert "cutting off end of data so that the batches/sequences divide evenly" in lines
    assert any(line.startswith("WARNING: less than 50 batches") for line in lines)
    assert loader.split_sizes == [36, 4, 5]               # floor(45*.8), floor(45*.1), rest
    assert lines[-1] == "data load done. Number of data batches in train: 36, val: 4, test: 5"
    for _ in range(37):
        x, _ = loader.next_batch(1)
    assert torch.equal(x, loader.x_batches[0])           # cycles back to its first batch
    assert torch.equal(loader.next_batch(2)[0], loader.x_batches[36])


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()
            if p.is_file()}


@pytest.mark.parametrize("case, expected", [
    ("no_input", "input text file not found"),
    ("empty", "the input text file is empty"),
    ("short", "less than one batch"),
    ("other_input", "it was made from another input"),
    ("vocab_dir", "expected a regular file"),
    ("all_bytes", "cannot number 256 tokens"),
    ("no_val", "no val batches"),
    ("nan_vocab_id", "expected single bytes mapped to ids"),
])
def test_bad_data_folders_are_refused_in_one_line(tmp_path, case, expected):
    folder = tmp_path / "data"
    folder.mkdir()
    text = CORPUS.read_bytes()[:3000]
    fractions = split_fractions(0.95, 0.05)
    if case != "no_input":
        (folder / "input.txt").write_bytes({"empty": b"", "all_bytes": bytes(range(256)) * 4,
                                            "short": text[:500]}.get(case, text))
    if case == "other_input":
        prepare_data_dir(str(folder))
        (folder / "input.txt").write_bytes(text[::-1])
        os.utime(folder / "input.txt", (1, 1))           # older than the .t7 files
    if case == "vocab_dir":
        (folder / "vocab.t7").mkdir()
    if case == "nan_vocab_id":                           # a damaged vocab.t7, still newer
        prepare_data_dir(str(folder))
        vocab = read_t7(folder / "vocab.t7")
        vocab[next(iter(vocab))] = float("nan")
        write_t7(folder / "vocab.t7", vocab)
        os.utime(folder / "input.txt", (1, 1))
    if case == "no_val":
        fractions = split_fractions(1.0, 0.0)
    before = _digest(folder)
    with pytest.raises(TorchRNNError) as err:
        load_data_dir(str(folder), 20 if case == "short" else 2, 50, fractions)   # 1000 | 100
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert _digest(folder) == before                     # nothing written, nothing lost


@pytest.mark.parametrize("train_frac, val_frac", [(0.9, 0.2), (1.5, 0.0), (float("nan"), 0.05)])
def test_bad_split_fractions(train_frac, val_frac):
    with pytest.raises(TorchRNNError):
        split_fractions(train_frac, val_frac)


# -- the model -------------------------------------------------------------------------------

def test_initial_params_are_the_second_nparams_draws():
    net = CharRNNNet("lstm", 62, 64, 2)
    assert net.nparams == 70078                           # as the train log says
    net.init_random(TorchGenerator(123))
    u32 = TorchGenerator(123).random(2 * net.nparams)[net.nparams:]
    assert torch.equal(net.params, torch.from_numpy(u32 * 2.0 ** -32 * 0.16 - 0.08))
    assert [s.name for s in net.slots] == ["i2h_1", "h2h_1", "i2h_2", "h2h_2", "decoder"]


@pytest.mark.parametrize("model_type", ["lstm", "gru", "rnn"])
def test_step_agrees_with_language_model_of_the_same_weights(model_type):
    net = CharRNNNet(model_type, 7, 5, 2)
    net.init_random(TorchGenerator(1))
    net.params.mul_(20)                                   # far from linear
    model = net.language_model([bytes([65 + k]) for k in range(7)])
    ids = torch.tensor([[1, 4, 6, 2, 7, 3], [2, 2, 5, 1, 6, 4]])    # (N, T) 1-based
    with torch.no_grad():
        wanted = torch.log_softmax(model(ids), -1)                  # (N, T, V)
        state, views = net.zero_state(2), net.linears()
        for t in range(ids.shape[1]):
            state, logprobs = net.step(ids[:, t] - 1, state, views)
            assert torch.allclose(logprobs, wanted[:, t], rtol=0, atol=1e-12)


@pytest.mark.parametrize("model_type", ["lstm", "gru", "rnn"])
def test_gradient_is_autograd_of_the_summed_loss_on_a_fresh_state(model_type):
    """Without the aliased state (the first minibatch) the gradient is the exact gradient of
    the sum over steps; with it only the first step's weight/gate terms change."""
    net = CharRNNNet(model_type, 6, 4, 2)
    net.init_random(TorchGenerator(5))
    x = torch.tensor([[1, 2, 3, 4], [6, 5, 4, 3]])
    y = torch.tensor([[2, 3, 4, 5], [5, 4, 3, 2]])
    loss, grad, _ = forward_backward(net, x, y, net.zero_state(2))
    model = net.language_model([bytes([97 + k]) for k in range(6)])
    scores = model(x)
    total = torch.nn.functional.cross_entropy(scores.reshape(-1, 6), (y - 1).reshape(-1),
                                              reduction="sum") / 2
    assert loss == pytest.approx(float(total.detach()) / 4, abs=1e-12)
    start = [torch.rand(2, 4, dtype=torch.float64) for _ in range(net.num_states)]
    _, fresh, _ = forward_backward(net, x, y, start)
    _, stale, _ = forward_backward(net, x, y, start, stale=True)
    assert grad.abs().sum() > 0 and not torch.allclose(fresh, stale)


# -- the fixture runs ------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(RUNS))
def test_first_iterations_print_charrnns_lines_and_losses(tmp_path, name):
    """Every line up to iteration N equals the original's log (time/batch aside), and each
    loss is within 1e-9 of the checkpoint's full-precision train_losses."""
    flags, n = RUNS[name]
    root, log = _fixture(name)
    folder = _public_dir(tmp_path)
    result, lines, _ = _train(folder, tmp_path, savefile=name, max_iterations=n, **flags)
    wanted = [_no_time(line.replace("data/public", str(folder))) for line in log]
    assert [_no_time(line) for line in lines] == wanted[:len(lines)]
    header = next(k for k, line in enumerate(log) if line.startswith("1/380 "))
    assert len(lines) == header + n and lines[-1].startswith(f"{n}/380 (epoch ")
    losses = np.array(result["train_losses"])
    reference = np.array([root["train_losses"][i] for i in range(1, n + 1)])
    assert np.abs(losses - reference).max() < 1e-9


@pytest.mark.parametrize("name", list(RUNS))
def test_validation_loss_of_the_fixture_weights(tmp_path, name):
    """eval_split over the val batches with the checkpoint's own weights gives the val loss
    the checkpoint records (dropout off in evaluation)."""
    root, _ = _fixture(name)
    flags, _ = RUNS[name]
    loader = load_data_dir(str(_public_dir(tmp_path)), 20, 50, split_fractions(0.95, 0.05))
    net = CharRNNNet(flags["model"], 62, flags["rnn_size"], 2, flags.get("dropout", 0))
    net.set_linears(ctrain.file_linears(root, flags["model"], 2, name))
    batches = [loader.next_batch(2) for _ in range(10)]
    seen = []
    with net.threads(20):
        loss, _ = evaluate_batches(net, batches, 20, seen.append)
    assert loss == pytest.approx(root["val_loss"], abs=1e-12) and seen == list(range(1, 11))


def test_file_linears_are_the_checkpoints_flat_parameters_in_modules_order():
    root, _ = _fixture("gru_2x64")
    graph = read_graph(root["protos"]["rnn"], pytest.fail)
    flat = torch.cat([torch.cat([n.module["weight"].flatten(), n.module["bias"]])
                      for n in graph.linears()])
    net = CharRNNNet("gru", 62, 64, 2)
    net.set_linears(ctrain.file_linears(root, "gru", 2, "gru_2x64"))
    assert torch.equal(net.params, flat.double()) and net.nparams == 53566


# -- the loop: validation, checkpoints, Lua's number semantics -------------------------------

def _tiny_dir(tmp_path):
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "input.txt").write_bytes(CORPUS.read_bytes()[:4000])
    return folder


def test_validation_checkpoint_lines_and_fields(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)   # the fallback lines
    result, lines, saved = _train(_tiny_dir(tmp_path), tmp_path, model="rnn", rnn_size=8,
                                  batch_size=4, seq_length=10, max_epochs=1,
                                  eval_val_every=40, savefile="tiny", gpuid=0)
    assert lines[:5] == ["package cunn not found!\t", "package cutorch not found!\t",
                         "If cutorch and cunn are installed, your CUDA toolkit may be "
                         "improperly configured.\t",
                         "Check your CUDA toolkit installation, rebuild cutorch and cunn, "
                         "and try again.\t", "Falling back on CPU mode\t"]
    k = lines.index("evaluating loss over split index 2\t")
    assert lines[k + 1:k + 6] == ["1/5...\t", "2/5...\t", "3/5...\t", "4/5...\t", "5/5...\t"]
    val = result["val_losses"][40]
    path = "%s/lm_tiny_epoch%.2f_%.4f.t7" % (tmp_path / "cv", 40 / 95, val)
    assert lines[k + 6] == f"saving checkpoint to {path}\t"
    assert lines[k + 7].startswith("40/95 (epoch 0.421), train_loss = ")
    assert sorted(result["val_losses"]) == [40, 80, 95]
    fields = saved[0][1]
    assert saved[0][0] == path and fields["i"] == 40 and len(fields["train_losses"]) == 40
    assert fields["opt"]["gpuid"] == -1 and fields["vocab_bytes"][0] == b"\n"
    assert fields["model_type"] == "rnn" and len(fields["linears"]) == 5


def test_training_continues_from_the_last_validation_state(tmp_path):
    """train.lua's carried state tensors are the last clone's outputs, which eval_split
    overwrites: after a validation the next minibatch starts from its final state."""
    folder = _tiny_dir(tmp_path)
    result, _, _ = _train(folder, tmp_path, model="rnn", rnn_size=8, batch_size=4,
                          seq_length=10, eval_val_every=3, max_iterations=3)
    loader = load_data_dir(str(folder), 4, 10, split_fractions(0.95, 0.05))
    _, after_val = evaluate_batches(result["net"], [loader.next_batch(2) for _ in range(5)], 4)
    assert list(result["val_losses"]) == [3]
    assert all(torch.equal(a, b) for a, b in zip(result["state"], after_val))


def test_lua_modulo_and_fractional_epochs(tmp_path):
    assert ctrain.lua_mod(7, 0) != ctrain.lua_mod(7, 0)         # NaN: never == 0
    assert ctrain.lua_mod(6, -3) == 0 and ctrain.lua_mod(5, 2.5) == 0
    result, lines, saved = _train(_tiny_dir(tmp_path), tmp_path, model="gru", rnn_size=8,
                                  batch_size=4, seq_length=10, max_epochs=0.1,
                                  eval_val_every=1000, print_every=0)
    assert not any("train_loss" in line for line in lines)     # i % 0 is never 0
    # 0.1 x 95 = 9.5 iterations: 9 run, and i == 9.5 never holds, so no checkpoint
    assert result["i"] == 9 and saved == []


def test_init_from_the_originals_checkpoint(tmp_path):
    folder = _public_dir(tmp_path)
    result, lines, _ = _train(folder, tmp_path, init_from=str(CHARRNN / "lstm_2x64.t7"),
                              rnn_size=8, num_layers=1, model="gru", max_iterations=1)
    k = lines.index("vocab size: 62\t")
    assert lines[k + 1:k + 7] == [
        f"loading a model from checkpoint {CHARRNN / 'lstm_2x64.t7'}\t",
        "overwriting rnn_size=64, num_layers=2, model=lstm based on the checkpoint.\t",
        "setting forget gate biases to 1 in LSTM layer 1\t",
        "setting forget gate biases to 1 in LSTM layer 2\t",
        "number of parameters in the model: 70078\t", "cloning rnn\t"]
    root, _ = _fixture("lstm_2x64")
    start = CharRNNNet("lstm", 62, 64, 2)
    start.set_linears(ctrain.file_linears(root, "lstm", 2, "f"))
    start.forget_bias_to_one()
    x, y = load_data_dir(str(folder), 20, 50, split_fractions(0.95, 0.05)).next_batch(1)
    loss, _, _ = forward_backward(start, x, y, start.zero_state(20))
    assert result["train_losses"] == [loss] and result["opt"]["model"] == "lstm"


def test_init_from_with_another_vocabulary_is_refused(tmp_path):
    with pytest.raises(TorchRNNError, match="vocabulary for this dataset and the one in the "
                                            "saved checkpoint are not the same"):
        _train(_tiny_dir(tmp_path), tmp_path, init_from=str(CHARRNN / "rnn_2x64.t7"),
               batch_size=4, seq_length=10)


# -- options and the command -----------------------------------------------------------------

@pytest.mark.parametrize("flag, value", [
    ("model", "lstmx"), ("rnn_size", 0), ("num_layers", 1.5), ("dropout", 1),
    ("grad_clip", -1), ("seed", 0.5), ("learning_rate", float("nan")), ("max_epochs", 0),
    ("decay_rate", 2), ("val_frac", 0.6), ("init_from", "/nonexistent.t7"),
])
def test_bad_options_are_refused_before_anything_runs(tmp_path, flag, value):
    with pytest.raises(TorchRNNError) as err:
        _train(tmp_path / "nowhere", tmp_path, **{flag: value})
    assert "\n" not in str(err.value) and not (tmp_path / "cv").exists()


def test_the_command_line_runs_and_refuses(tmp_path, capsys):
    folder = _tiny_dir(tmp_path)
    status = cli.main(["-data_dir", str(folder), "-model", "rnn", "-rnn_size", "8",
                       "-batch_size", "4", "-seq_length", "10", "-max_epochs", "0.2",
                       "-gpuid", "-1", "-checkpoint_dir", str(tmp_path / "cv")])
    out = capsys.readouterr()
    lines = out.out.split("\n")
    assert status == 0 and out.err == "" and lines[-1] == ""
    assert lines[-2].startswith("19/19 (epoch 0.200), train_loss = ")
    assert all(line.endswith("\t") for line in lines[:-1])
    saved = lines[-3][len("saving checkpoint to "):-1]
    assert lines[-3].startswith("saving checkpoint to ") and os.path.isfile(saved)
    assert cli.main(["-rnn_siz", "8"]) == 2
    assert "did you mean -rnn_size?" in capsys.readouterr().err
    assert cli.main(["-data_dir", str(tmp_path / "none"), "-gpuid", "-1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("torchrnn-charrnn-train: error: ") and "\n" not in err


def test_checkpoints_load_sample_and_resume(tmp_path, capsys):
    """The checkpoints are char-rnn's (load_charrnn reads them, torchrnn-charrnn-sample
    samples them) and -init_from continues from their weights."""
    folder = _tiny_dir(tmp_path)
    lines = []
    options = dict(data_dir=str(folder), model="lstm", rnn_size=8, batch_size=4,
                   seq_length=10, max_epochs=0.2, eval_val_every=10, gpuid=-1,
                   checkpoint_dir=str(tmp_path / "cv"), savefile="tiny")
    result = ctrain.train_charrnn(log=lines.append, **options)
    paths = [line[len("saving checkpoint to "):-1] for line in lines
             if line.startswith("saving checkpoint to ")]
    assert len(paths) == 2 and all(os.path.isfile(p) for p in paths)
    ck = load_charrnn(paths[1])
    assert (ck.model_type, ck.i, ck.epoch) == ("lstm", 19, 19 / 95)
    assert ck.train_losses == result["train_losses"] and ck.val_losses == result["val_losses"]
    assert ck.val_loss == result["val_losses"][19] and ck.opt["savefile"] == "tiny"
    net = CharRNNNet("lstm", ck.model.vocab_size, 8, 2)
    net.set_linears(ctrain.file_linears(read_t7(paths[1]), "lstm", 2, paths[1]))
    assert torch.equal(net.params, result["net"].params)
    assert charrnn_sample.main([paths[1], "-gpuid", "-1", "-verbose", "0",
                                "-length", "30"]) == 0
    assert len(capsys.readouterr().out.encode("latin-1")) == 31
    resumed = []
    again = ctrain.train_charrnn(log=resumed.append, save_checkpoint=lambda p, f: None,
                                 max_iterations=1, **dict(options, init_from=paths[1]))
    assert f"loading a model from checkpoint {paths[1]}\t" in resumed
    net.forget_bias_to_one()
    loader = load_data_dir(str(folder), 4, 10, split_fractions(0.95, 0.05))
    x, y = loader.next_batch(1)
    loss, _, _ = forward_backward(net, x, y, net.zero_state(4))
    assert again["train_losses"] == [loss]


def test_loader_split_pointer_is_one_based():
    x = [torch.full((1, 1), k) for k in range(3)]
    loader = CharSplitLoader({b"a": 1}, x, x, [2, 1, 0])
    assert [int(loader.next_batch(1)[0]) for _ in range(3)] == [0, 1, 0]
    assert int(loader.next_batch(2)[0]) == 2
    with pytest.raises(TorchRNNError):
        loader.next_batch(3)


@pytest.mark.parametrize("flags, expected", [
    (dict(savefile="a/b"), "-savefile 'a/b': checkpoints are named"),
    (dict(savefile="x" * 300), "must be a non-empty name without '/'"),
    (dict(rnn_size=10 ** 9), "the model asked for is too large for this machine"),
    (dict(gpuid=1.5), "-gpuid must be an integer, got 1.5"),
    (dict(checkpoint_dir="LINK"), "-checkpoint_dir is a symbolic link to"),
])
def test_what_would_fail_late_is_refused_before_training(tmp_path, flags, expected):
    """A checkpoint name that cannot be written would fail only when the first checkpoint
    is due (hours in); a model larger than memory only in the allocator: both one line at
    the start, with no iteration run."""
    lines = []
    options = dict(data_dir=str(_tiny_dir(tmp_path)), model="rnn", rnn_size=8, batch_size=4,
                   seq_length=10, max_epochs=0.2, gpuid=-1,
                   checkpoint_dir=str(tmp_path / "cv"))
    if flags.get("checkpoint_dir") == "LINK":            # a dangling symbolic link
        os.symlink(tmp_path / "gone", tmp_path / "link")
        flags = dict(checkpoint_dir=str(tmp_path / "link"))
    with pytest.raises(TorchRNNError) as err:
        ctrain.train_charrnn(log=lines.append, **dict(options, **flags))
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert not any("train_loss" in line for line in lines)


def test_sigterm_stops_the_command_as_ctrl_c_does(tmp_path, monkeypatch, capsys):
    """Killed, the command stops with 'terminated' and 143 (its temporary files are removed
    as on Ctrl-C); our own handler stands in for the default one, which would end pytest."""
    import signal
    previous = signal.signal(signal.SIGTERM, lambda *args: None)
    try:
        def killed(**options):
            signal.raise_signal(signal.SIGTERM)
        monkeypatch.setattr(cli, "train_charrnn", killed)
        assert cli.main(["-gpuid", "-1"]) == 143
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert capsys.readouterr().err == "torchrnn-charrnn-train: terminated\n"
