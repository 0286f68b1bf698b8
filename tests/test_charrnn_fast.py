"""torchrnn-charrnn-train's fast trainer (torchrnn_py/charrnn/fast.py: char-rnn's maths on
torch-rnn's fused layers) against the faithful one (torchrnn_py/charrnn/train.py): in float64
it prints the lines the faithful trainer prints without train.lua's aliased first step
(losses, norms, validations), in float32 it stays close, its checkpoints are char-rnn's, and
-gpuid/-fast/-double choose it as docs/migration.md says."""
import os
import re
import shutil

import numpy as np
import pytest
import torch

from torchrnn_py.charrnn import load_charrnn
from torchrnn_py.charrnn import train as ctrain
from torchrnn_py.charrnn.data import prepare_data_dir
from torchrnn_py.charrnn.fast import FastTrainer
from torchrnn_py.charrnn.net import CharRNNNet
from torchrnn_py.cli import charrnn_train as cli
from torchrnn_py.errors import TorchRNNError
from torchrnn_py.rng import TorchGenerator

from conftest import FIXTURES

CHARRNN = FIXTURES / "charrnn"
CORPUS = FIXTURES.parent.parent / "torchrnn_py" / "corpus" / "tiny-shakespeare.txt"
#: 4000 bytes in batches of 4 x 10: 95 train and 5 val batches; a validation every 10.
TINY = dict(rnn_size=16, num_layers=2, batch_size=4, seq_length=10, learning_rate=5e-3,
            max_epochs=1, eval_val_every=10, seed=123, gpuid=-1)
MODELS = {"lstm": dict(model="lstm"), "gru": dict(model="gru"), "rnn": dict(model="rnn"),
          "lstm_dropout": dict(model="lstm", dropout=0.5, num_layers=3)}


@pytest.fixture
def tiny_dir(tmp_path):
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "input.txt").write_bytes(CORPUS.read_bytes()[:4000])
    prepare_data_dir(str(folder))                # every run then prints the same lines
    return folder


def _train(folder, tmp_path, n=20, **flags):
    """(result, printed lines with time/batch blanked, saved checkpoint fields)."""
    lines, saved = [], []
    options = dict(TINY, data_dir=str(folder), checkpoint_dir=str(tmp_path / "cv"))
    options.update(flags)
    result = ctrain.train_charrnn(log=lines.append, max_iterations=n,
                                  save_checkpoint=lambda p, f: saved.append((p, f)), **options)
    return result, [re.sub(r"time/batch = [0-9.]+s", "time/batch = X", line)
                    for line in lines], saved


def _progress(lines):
    return [line for line in lines if "train_loss = " in line]


def _max_diff(a, b):
    return float(np.abs(np.array(a) - np.array(b)).max())


# -- float64: the faithful trainer's numbers without the aliased first step ------------------

@pytest.mark.parametrize("name", list(MODELS))
def test_fast_float64_prints_the_faithful_lines_without_the_alias(tiny_dir, tmp_path, name):
    """Every printed line (each train_loss to 8 decimals, each grad/param norm to 4 digits,
    two validations with their checkpoints' names) is the faithful trainer's with
    alias_first_step=False; losses, val losses, weights and carried state within 1e-12."""
    flags = MODELS[name]
    want, want_lines, want_saved = _train(tiny_dir, tmp_path, alias_first_step=False, **flags)
    got, got_lines, got_saved = _train(tiny_dir, tmp_path, fast=1, double=1, **flags)
    assert isinstance(got["trainer"], FastTrainer) and got["trainer"].dtype == torch.float64
    assert len(_progress(got_lines)) == 20 and got_lines == want_lines
    assert _max_diff(got["train_losses"], want["train_losses"]) < 1e-12
    assert sorted(got["val_losses"]) == [10, 20]
    assert _max_diff(list(got["val_losses"].values()), list(want["val_losses"].values())) < 1e-12
    assert float((got["net"].params - want["net"].params).abs().max()) < 1e-12
    assert all(torch.allclose(a, b, rtol=0, atol=1e-12)     # the last validation's state
               for a, b in zip(got["state"], want["state"]))
    assert [p for p, _ in got_saved] == [p for p, _ in want_saved]


def test_fast_float32_stays_within_1e_4(tiny_dir, tmp_path):
    for name in ("lstm", "gru", "rnn", "lstm_dropout"):
        want, _, _ = _train(tiny_dir, tmp_path, alias_first_step=False, **MODELS[name])
        got, _, _ = _train(tiny_dir, tmp_path, fast=1, **MODELS[name])
        assert got["trainer"].dtype == torch.float32
        assert 0 < _max_diff(got["train_losses"], want["train_losses"]) < 1e-4, name
        assert _max_diff(list(got["val_losses"].values()),
                         list(want["val_losses"].values())) < 1e-4, name


def test_with_the_alias_the_first_update_is_identical_and_the_rest_close(tiny_dir, tmp_path):
    """train.lua's aliased state changes only the gradient of each minibatch's first step
    from the second minibatch on: the first two losses and the first norm are the same."""
    for name in ("lstm", "gru", "rnn"):
        quirk, quirk_lines, _ = _train(tiny_dir, tmp_path, learning_rate=2e-3, **MODELS[name])
        fast, fast_lines, _ = _train(tiny_dir, tmp_path, learning_rate=2e-3, fast=1, double=1,
                                     **MODELS[name])
        a, b = np.array(quirk["train_losses"]), np.array(fast["train_losses"])
        assert np.abs(a[:2] - b[:2]).max() < 1e-12 and abs(a[2] - b[2]) > 1e-9, name
        assert np.abs(a - b).max() < 0.05 * a.max(), name
        first, second = _progress(quirk_lines)[:2], _progress(fast_lines)[:2]
        assert first[0] == second[0] and first[1] != second[1], name


def test_summed_bias_steps_twice_and_the_separate_biases_come_back(tiny_dir, tmp_path):
    """One fast update of a GRU: each summed bias moved by twice the step each of char-rnn's
    two took (the faithful trainer's update of the same batch); d = b_i2h - b_h2h kept."""
    faithful, _, _ = _train(tiny_dir, tmp_path, n=1, model="gru", alias_first_step=False)
    fast, _, _ = _train(tiny_dir, tmp_path, n=1, model="gru", fast=1, double=1)
    start = CharRNNNet("gru", faithful["net"].vocab_size, 16, 2)
    start.init_random(TorchGenerator(123))
    step = faithful["net"].params - start.params                # each Linear's own step
    trainer = fast["trainer"]
    layers, _ = faithful["net"].layer_views(faithful["net"].linears(step))
    for layer, rnn in enumerate(trainer.model.rnns):
        lin = layers[layer]
        moved = torch.cat([lin[f"i2h_{g}"][1] + lin[f"h2h_{g}"][1] for g in "zrc"])
        sums = start.language_model(_vocab(faithful)).rnns[layer].bias
        assert torch.allclose(rnn.bias.detach() - sums.detach(), moved, rtol=0, atol=1e-15)
        assert torch.allclose(lin["i2h_z"][1], lin["h2h_z"][1], rtol=0, atol=1e-16)
    for (w, b), (W, B) in zip(trainer.linears(), faithful["net"].linears()):
        assert max(float((w - W).abs().max()), float((b - B).abs().max())) < 1e-13


def _vocab(result):
    return [bytes([k]) for k in range(result["net"].vocab_size)]


def test_recovered_linears_and_gradients_of_a_fresh_trainer():
    """Before any update the fast model's Linears are the net's (weights exactly, the
    biases recovered from their sum and difference within one rounding); the gradient of a
    pair is the summed bias's, twice."""
    for model_type in ("lstm", "gru", "rnn"):
        net = CharRNNNet(model_type, 7, 5, 2)
        net.init_random(TorchGenerator(3))
        trainer = FastTrainer(net, [bytes([65 + k]) for k in range(7)], TorchGenerator(1),
                              dict(batch_size=2, seq_length=3, grad_clip=5, decay_rate=0.95,
                                   accurate_gpu_timing=0), "cpu", torch.float64)
        for (w, b), (W, B) in zip(trainer.linears(), net.linears()):
            assert torch.equal(w, W) and torch.allclose(b, B, rtol=0, atol=1e-17)
        x = torch.tensor([[1, 2, 3], [7, 6, 5]])
        trainer.step(x, x.roll(-1, 1), 0.0)                          # a gradient, no move
        grads = trainer.grad_linears()
        assert torch.equal(grads[0][1], grads[1][1])                  # i2h's bias, h2h's
        flat = torch.cat([torch.cat([w.flatten(), b]) for w, b in grads])
        params = torch.cat([torch.cat([w.flatten(), b]) for w, b in trainer.linears()])
        assert trainer.norm() == pytest.approx(float(flat.norm() / params.norm()), rel=1e-14)


def test_dropout_takes_a_given_mask_in_training_only():
    from torchrnn_py.modules import Dropout
    dropout = Dropout(0.5)
    x = torch.arange(6.0).view(1, 2, 3)
    dropout.mask = torch.tensor([[[2.0, 0, 2], [0, 2, 0]]])
    assert torch.equal(dropout(x), torch.tensor([[[0.0, 0, 4], [0, 8, 0]]]))
    assert torch.equal(dropout.eval()(x), x)
    dropout.train().mask = torch.ones(2, 3)
    with pytest.raises(ValueError, match="dropout mask of shape"):
        dropout(x)


# -- checkpoints and -init_from -----------------------------------------------------------------

def test_fast_checkpoints_load_and_equal_the_faithful_ones(tiny_dir, tmp_path):
    """The fast trainer's checkpoints go through char-rnn's writer: load_charrnn reads them,
    and each field is the faithful (unaliased) run's; the writer gets the same tables."""
    runs = {}
    for label, flags in (("faithful", dict(alias_first_step=False)),
                         ("fast", dict(fast=1, double=1))):
        lines = []
        ctrain.train_charrnn(log=lines.append, max_iterations=20, model="lstm",
                             data_dir=str(tiny_dir), checkpoint_dir=str(tmp_path / label),
                             **dict(TINY, savefile="tiny"), **flags)
        runs[label] = [line[len("saving checkpoint to "):-1] for line in lines
                       if line.startswith("saving checkpoint to ")]
    assert len(runs["fast"]) == 2
    for want_path, got_path in zip(runs["faithful"], runs["fast"]):
        assert os.path.basename(want_path) == os.path.basename(got_path)
        want, got = load_charrnn(want_path), load_charrnn(got_path)
        assert (got.model_type, got.i, got.epoch) == (want.model_type, want.i, want.epoch)
        assert "fast" not in got.opt and "double" not in got.opt
        assert {k: v for k, v in got.opt.items() if k != "checkpoint_dir"} == \
            {k: v for k, v in want.opt.items() if k != "checkpoint_dir"}
        assert _max_diff(got.train_losses, want.train_losses) < 1e-12
        assert abs(got.val_loss - want.val_loss) < 1e-12
        a, b = ctrain.file_linears(_t7(got_path), "lstm", 2, got_path), \
            ctrain.file_linears(_t7(want_path), "lstm", 2, want_path)
        assert max(float((w - W).abs().max()) for (w, _), (W, _) in zip(a, b)) < 1e-12
        assert max(float((u - U).abs().max()) for (_, u), (_, U) in zip(a, b)) < 1e-12


def _t7(path):
    from torchrnn_py.t7 import read_t7
    return read_t7(path)


def test_init_from_the_originals_gru_checkpoint(tmp_path):
    """-init_from a real char-rnn GRU file: d comes from its own biases; three fast
    iterations in float64 follow the faithful (unaliased) ones, and the weights written
    back keep each pair's difference."""
    folder = tmp_path / "public"
    folder.mkdir()
    (folder / "input.txt").write_bytes(CORPUS.read_bytes()[:200000])
    os.utime(folder / "input.txt", (1, 1))
    for name in ("vocab.t7", "data.t7"):
        shutil.copy(CHARRNN / "data_public" / name, folder / name)
    flags = dict(init_from=str(CHARRNN / "gru_2x64.t7"), batch_size=20, seq_length=50,
                 eval_val_every=1000)
    want, want_lines, _ = _train(folder, tmp_path, n=3, alias_first_step=False, **flags)
    got, got_lines, _ = _train(folder, tmp_path, n=3, fast=1, double=1, **flags)
    assert "overwriting rnn_size=64, num_layers=2, model=gru based on the checkpoint.\t" \
        in got_lines and got_lines == want_lines
    assert _max_diff(got["train_losses"], want["train_losses"]) < 1e-12
    original = ctrain.file_linears(_t7(CHARRNN / "gru_2x64.t7"), "gru", 2, "gru_2x64")
    final = got["net"].linears()
    pairs = [(0, 1), (3, 4), (2, 5)]                            # z, r, c in modules order
    for layer in (0, 6):
        for x, h in pairs:
            before = original[layer + x][1] - original[layer + h][1]
            after = final[layer + x][1] - final[layer + h][1]
            assert torch.allclose(after, before, rtol=0, atol=1e-14)
            assert not torch.equal(final[layer + x][1], original[layer + x][1])


# -- which trainer: -gpuid, -fast, -double ----------------------------------------------------

def test_gpuid_without_cuda_falls_back_to_the_faithful_cpu_trainer(tiny_dir, tmp_path,
                                                                  monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result, lines, _ = _train(tiny_dir, tmp_path, n=1, model="rnn", gpuid=0)
    assert lines[:5] == [
        "package cunn not found!\t", "package cutorch not found!\t",
        "If cutorch and cunn are installed, your CUDA toolkit may be improperly configured.\t",
        "Check your CUDA toolkit installation, rebuild cutorch and cunn, and try again.\t",
        "Falling back on CPU mode\t"]
    assert isinstance(result["trainer"], ctrain.FaithfulTrainer)
    assert result["opt"]["gpuid"] == -1
    fast, fast_lines, _ = _train(tiny_dir, tmp_path, n=1, model="rnn", gpuid=0, fast=1)
    assert fast_lines[:5] == lines[:5] and isinstance(fast["trainer"], FastTrainer)


def test_gpuid_with_cuda_chooses_the_fast_trainer_on_that_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    chosen = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    lines = []
    opt = dict(ctrain.DEFAULTS, gpuid=1)
    assert ctrain.choose_trainer(opt, lines.append) == (torch.device("cuda", 1), torch.float32)
    assert lines == ["using CUDA on GPU 1..."] and chosen == [1] and opt["gpuid"] == 1
    assert ctrain.choose_trainer(dict(opt, double=1), lines.append)[1] == torch.float64
    for bad in (2, 0.5):
        with pytest.raises(TorchRNNError, match="this machine has 2 CUDA device"):
            ctrain.choose_trainer(dict(opt, gpuid=bad), lines.append)
    lines.clear()
    opencl = dict(opt, opencl=1)
    assert ctrain.choose_trainer(opencl, lines.append) is None
    assert lines[0] == "package clnn not found!" and lines[-1] == "Falling back on CPU mode"
    assert ctrain.choose_trainer(dict(opt, gpuid=-1), lines.append) is None
    assert ctrain.choose_trainer(dict(opt, gpuid=-1, fast=1), lines.append) == \
        (torch.device("cpu"), torch.float32)


def test_the_fast_trainer_moves_its_model_to_cuda_when_chosen(monkeypatch):
    """On a CUDA device the trainer sets IEEE float32 and puts its model there (the move
    itself is mocked on this CPU machine: the model's .to gets the device)."""
    net = CharRNNNet("lstm", 5, 4, 1)
    net.init_random(TorchGenerator(2))
    moved, precisions = [], []
    from torchrnn_py.charrnn import fast
    monkeypatch.setattr(fast, "apply_cuda_precision", precisions.append)
    real_to = torch.nn.Module.to

    def to(self, *args, **kwargs):
        moved.append(kwargs.get("device"))
        return real_to(self, dtype=kwargs.get("dtype"))
    monkeypatch.setattr(torch.nn.Module, "to", to)
    trainer = FastTrainer(net, [bytes([65 + k]) for k in range(5)], TorchGenerator(1),
                          dict(batch_size=2, seq_length=3, grad_clip=5, decay_rate=0.95,
                               accurate_gpu_timing=0), "cuda:0")
    assert moved == [torch.device("cuda", 0)] and precisions == ["fp32"]
    assert trainer.model.linear.weight.dtype == torch.float32


def test_the_command_line_says_which_trainer_runs(tiny_dir, tmp_path, capsys):
    common = ["-data_dir", str(tiny_dir), "-model", "rnn", "-rnn_size", "8", "-batch_size",
              "4", "-seq_length", "10", "-max_epochs", "0.05", "-checkpoint_dir",
              str(tmp_path / "cv")]
    assert cli.main(common + ["-gpuid", "-1", "-fast", "1"]) == 0
    out = capsys.readouterr()
    assert out.err == ("torchrnn-charrnn-train: note: fast trainer on the CPU in float32: "
                       "char-rnn's maths on fused kernels, not its digits "
                       "(docs/migration.md)\n")
    assert _progress(out.out.split("\n"))[-1].startswith("4/4 (epoch 0.042), train_loss = ")
    assert cli.main(common + ["-gpuid", "-1"]) == 0 and capsys.readouterr().err == ""
    assert cli.main(common + ["-gpuid", "-1", "-fast", "1", "-double", "1"]) == 0
    assert "fast trainer on the CPU in float64: char-rnn's maths on fused kernels, without " \
        "its aliased first step" in capsys.readouterr().err
    assert cli.main(common + ["-gpuid", "-1", "-double", "1"]) == 0
    assert capsys.readouterr().err.endswith("in float64 (what char-rnn computes with -gpuid "
                                            "-1); -double 1 only changes the fast trainer\n")
    assert cli.main(common + ["-fast", "2"]) == 1
    assert "-fast must be 0 or 1, got 2" in capsys.readouterr().err
