"""The GRU layer (char-rnn's equations in torch-rnn's layout) and GRU language models: the
hand-written backward against gradcheck and plain autograd, char-rnn's own forward dump,
seeded initialisation in GRU.lua's order, remembered states, steppers, checkpoints, train."""
import contextlib
import csv
import functools
import io
import os
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from conftest import FIXTURES, GOLDEN, make_tiny_h5
from torchrnn_py import checkpoint as ckpt
from torchrnn_py import sampling
from torchrnn_py import train as train_mod
from torchrnn_py.cli import evaluate as eval_cli
from torchrnn_py.cli import sample as sample_cli
from torchrnn_py.cli import train as train_cli
from torchrnn_py.criterion import torch7_loss_value
from torchrnn_py.data import DataLoader
from torchrnn_py.errors import TorchRNNError
from torchrnn_py.model import LanguageModel
from torchrnn_py.modules import GRU, _GRUFunction
from torchrnn_py.rng import TorchGenerator
from torchrnn_py.sampling import NumpyStepper, TorchStepper
from torchrnn_py.t7 import read_t7, write_t7
from torchrnn_py.train_checks import model_parameter_count
from torchrnn_py.vocab import read_vocab

CHARRNN = FIXTURES / "charrnn"
JSON = GOLDEN / "shakespeare200k.json"
LOSS_LINE = re.compile(r"^Epoch \d+\.\d\d / \d+, i = \d+ / \d+, loss = (\d+\.\d{6})$")
VOCAB = "\n !&',-.:;?ABCDEFGHIJKLMNOPQRSTUVWYZabcdefghijklmnopqrstuvwxyz"   # char-rnn's fixture


def reference_gru(x, h0, weight, bias):
    """The equations written plainly, one step at a time, differentiated by autograd:
    z, r = sigmoid(x Wx + h Wh + b), c = tanh(x Wx_c + (r h) Wh_c + b_c), h' = z c + (1-z) h."""
    D, H = x.shape[2], h0.shape[1]
    Wx, Wh = weight[:D], weight[D:]
    h, out = h0, []
    for t in range(x.shape[1]):
        a = x[:, t] @ Wx + bias                                     # (N, 3H)
        z = torch.sigmoid(a[:, :H] + h @ Wh[:, :H])
        r = torch.sigmoid(a[:, H:2 * H] + h @ Wh[:, H:2 * H])
        c = torch.tanh(a[:, 2 * H:] + (r * h) @ Wh[:, 2 * H:])
        h = z * c + (1 - z) * h
        out.append(h)
    return torch.stack(out, 1)                                      # (N, T, H)


def _inputs(N, T, D, H, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, T, D, generator=g, dtype=dtype, requires_grad=True)
    h0 = torch.randn(N, H, generator=g, dtype=dtype, requires_grad=True)
    weight = (0.5 * torch.randn(D + H, 3 * H, generator=g, dtype=dtype)).requires_grad_()
    bias = (0.5 * torch.randn(3 * H, generator=g, dtype=dtype)).requires_grad_()
    return x, h0, weight, bias


# -- the layer ----------------------------------------------------------------------------

def test_gradcheck_float64():
    assert torch.autograd.gradcheck(_GRUFunction.apply, _inputs(2, 4, 3, 5, torch.float64))


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_forward_and_gradients_match_plain_autograd(dtype, tol):
    inputs = _inputs(3, 7, 4, 6, dtype, seed=1)
    ours = _GRUFunction.apply(*inputs)
    ref = reference_gru(*inputs)
    torch.testing.assert_close(ours, ref, rtol=0, atol=tol)
    grad = torch.randn(ours.shape, generator=torch.Generator().manual_seed(2), dtype=dtype)
    ours_grads = torch.autograd.grad(ours, inputs, grad)
    ref_grads = torch.autograd.grad(ref, inputs, grad)
    for name, a, b in zip(("x", "h0", "weight", "bias"), ours_grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=0, atol=tol * 10, msg=name)


def test_not_pytorchs_gru():
    # the same numbers through torch.nn.GRU's equations (r after the product, z on h) differ
    x, h0, weight, bias = (t.detach() for t in _inputs(2, 5, 3, 4, torch.float64, seed=3))
    D, H = 3, 4
    torch_gru = torch.nn.GRU(D, H, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        # PyTorch's gate rows are r, z, n
        order = torch.cat([torch.arange(H, 2 * H), torch.arange(0, H), torch.arange(2 * H, 3 * H)])
        torch_gru.weight_ih_l0.copy_(weight[:D].t()[order])
        torch_gru.weight_hh_l0.copy_(weight[D:].t()[order])
        torch_gru.bias_ih_l0.copy_(bias[order])
        torch_gru.bias_hh_l0.zero_()
        theirs, _ = torch_gru(x, h0.unsqueeze(0))
    ours = _GRUFunction.apply(x, h0, weight, bias)
    assert (ours - theirs).abs().max() > 1e-2


def test_layer_parameters_states_and_devices():
    D, H = 3, 5
    gru = GRU(D, H)
    assert gru.weight.shape == (D + H, 3 * H) and gru.bias.shape == (3 * H,)
    assert gru.extra_repr() == "3, 5"
    x = torch.randn(2, 6, D)
    with torch.no_grad():
        ref = reference_gru(x, torch.zeros(2, H), gru.weight, gru.bias)
        torch.testing.assert_close(gru(x), ref, rtol=0, atol=1e-6)        # zeros by default
        torch.testing.assert_close(gru(x), ref, rtol=0, atol=1e-6)   # not from the state
        gru.remember_states = True
        gru.reset_states()
        first = gru(x[:, :4])
        (h,) = gru.state
        assert h.shape == (2, H) and torch.equal(h, first[:, -1])
        rest = gru(x[:, 4:])                            # continues from the state
        torch.testing.assert_close(torch.cat([first, rest], 1), ref, rtol=0, atol=1e-6)
        with pytest.raises(ValueError, match="batch size changed from 2 to 3"):
            gru(torch.randn(3, 2, D))
        empty = gru(torch.randn(2, 0, D))               # no steps: the state stays
        assert empty.shape == (2, 0, H) and torch.equal(gru.state[0], rest[:, -1])
        gru.double()                                    # the state moves with the parameters
        assert gru.state[0].dtype == torch.float64
        gru.reset_states()
        assert gru.state is None
        h0 = torch.randn(2, H, dtype=torch.float64)
        given = gru(x.double(), h0)
        torch.testing.assert_close(given, reference_gru(x.double(), h0, gru.weight, gru.bias),
                                   rtol=0, atol=1e-12)


def test_seeded_init_draws_bias_then_weight():
    D, H = 5, 7                       # 3H = 21 normals: the Box-Muller pair cache crosses over
    gru = GRU(D, H)
    gru.reset_parameters(TorchGenerator(3))
    values = TorchGenerator(3).normal(3 * H + (D + H) * 3 * H, 0.0, 1.0 / np.sqrt(D + H))
    values = torch.from_numpy(values).float()
    torch.testing.assert_close(gru.bias.detach(), values[:3 * H], rtol=0, atol=0)
    torch.testing.assert_close(gru.weight.detach(), values[3 * H:].view(D + H, 3 * H),
                               rtol=0, atol=0)


# -- char-rnn's own numbers ----------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _charrnn_file():
    return read_t7(CHARRNN / "gru_2x64.t7")


def _charrnn_gru_model():
    """gru_2x64.t7's weights in a LanguageModel("gru") built here from its six Linears per
    layer (modules order: i2h_z, h2h_z, x->c, i2h_r, h2h_r, (r h)->c; fixtures README), the
    one-hot input as an identity embedding, in float64."""
    modules = _charrnn_file()["protos"]["rnn"]["modules"]
    linears = [m for _, m in sorted(modules.items()) if m.class_name == "nn.Linear"]
    V, H = len(VOCAB), 64
    model = LanguageModel({i + 1: ch for i, ch in enumerate(VOCAB)}, "gru", V, H, 2,
                          init=False).double()
    with torch.no_grad():
        model.embedding.weight.copy_(torch.eye(V))
        for layer, rnn in enumerate(model.rnns):
            iz, hz, ic, ir, hr, hc = linears[6 * layer:6 * layer + 6]
            for block, (i2h, h2h) in enumerate([(iz, hz), (ir, hr), (ic, hc)]):
                cols = slice(block * H, (block + 1) * H)
                rnn.weight[:rnn.input_dim, cols] = i2h["weight"].t()
                rnn.weight[rnn.input_dim:, cols] = h2h["weight"].t()
                rnn.bias[cols] = i2h["bias"] + h2h["bias"]
        model.linear.weight.copy_(linears[-1]["weight"])
        model.linear.bias.copy_(linears[-1]["bias"])
    return model.eval()


def test_charrnn_gru_forward_dump_float64():
    with h5py.File(CHARRNN / "gru_2x64.forward.h5", "r") as f:
        ids, logprobs, states = f["input"][()], f["logprobs"][()], f["states"][()]
        assert bytes(f["vocab"][()]).decode() == VOCAB
    model = _charrnn_gru_model()
    with torch.no_grad():
        scores = model(torch.from_numpy(ids).view(1, -1))[0]         # (200, V)
    ours = torch.log_softmax(scores, -1).numpy()
    np.testing.assert_allclose(ours, logprobs, rtol=0, atol=1e-10)
    # the states after the last byte: h_1, h_2 of the dump's last step
    last = np.stack([rnn.state[0][0].numpy() for rnn in model.rnns])
    np.testing.assert_allclose(last, states[-1], rtol=0, atol=1e-10)
    assert np.abs(logprobs[1:] - logprobs[:-1]).max() > 1       # the dump is not constant


# -- the language model --------------------------------------------------------------------

def _lm(**kwargs):
    options = dict(wordvec_size=4, rnn_size=6, num_layers=2, generator=TorchGenerator(5))
    options.update(kwargs)
    return LanguageModel({i + 1: ch for i, ch in enumerate("abcdefg")}, "gru", **options)


@pytest.mark.parametrize("batchnorm", [0, 1])
def test_language_model_seeded_init_order(batchnorm):
    V, D, H = 7, 4, 6
    model = _lm(batchnorm=batchnorm)
    gen = TorchGenerator(5)
    f32 = lambda values, *shape: torch.from_numpy(values).float().view(*shape)   # noqa: E731
    expected = {"embedding.weight": f32(gen.normal(V * D, 0.0, 1.0), V, D)}
    for layer in range(2):
        Din = D if layer == 0 else H
        std = 1 / np.sqrt(Din + H)
        expected[f"rnns.{layer}.bias"] = f32(gen.normal(3 * H, 0.0, std), 3 * H)
        expected[f"rnns.{layer}.weight"] = f32(gen.normal((Din + H) * 3 * H, 0.0, std),
                                               Din + H, 3 * H)
        if batchnorm:
            expected[f"batchnorms.{layer}.weight"] = f32(gen.uniform(H), H)
            expected[f"batchnorms.{layer}.bias"] = torch.zeros(H)
    bound = 1 / np.sqrt(H)
    expected["linear.weight"] = f32(gen.uniform(V * H, -bound, bound), V, H)
    expected["linear.bias"] = f32(gen.uniform(V, -bound, bound), V)
    params = dict(model.named_parameters())
    assert set(params) == set(expected)
    for name, value in expected.items():
        torch.testing.assert_close(params[name].detach(), value, rtol=0, atol=0, msg=name)


def test_language_model_states_carry_over_and_round_trip():
    model = _lm().eval()
    ids = torch.randint(1, 8, (3, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole = model(ids)
        model.reset_states()
        first = model(ids[:, :5])
        saved = model.get_states()
        assert [tuple(t.shape for t in s) for s in saved] == [((3, 6),), ((3, 6),)]
        rest = model(ids[:, 5:])
        torch.testing.assert_close(torch.cat([first, rest], 1), whole, rtol=0, atol=1e-6)
        model.set_states(saved)                         # back to after the first 5
        torch.testing.assert_close(model(ids[:, 5:]), rest, rtol=0, atol=0)
        model.reset_states()
        assert not torch.allclose(model(ids[:, 5:]), rest, atol=1e-3)


def test_language_model_with_dropout_and_batchnorm_trains():
    model = _lm(dropout=0.3, batchnorm=1).train()
    model.set_dropout_generator(TorchGenerator(9))
    ids = torch.randint(1, 8, (4, 10), generator=torch.Generator().manual_seed(1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(15):
        model.reset_states()
        optimizer.zero_grad()
        loss = model.loss(model(ids[:, :-1]), ids[:, 1:])
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
                   for p in model.parameters())
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.3
    assert "model_type='gru'" in repr(model)


# -- sampling ------------------------------------------------------------------------------

def _bn_dropout_lm(dtype):
    """A GRU model whose layers differ in width (D 5, H 6) with batch normalisation (running
    statistics made up) and dropout, in evaluation mode."""
    model = _lm(wordvec_size=5, dropout=0.2, batchnorm=1).to(dtype).eval()
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for bn in model.batchnorms:
            bn.running_mean.copy_(0.3 * torch.randn(6, generator=g))
            bn.running_var.copy_(0.5 + torch.rand(6, generator=g))
            bn.bias.copy_(0.2 * torch.randn(6, generator=g))
    return model


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("stepper_class", [NumpyStepper, TorchStepper])
def test_steppers_match_the_forward_pass(stepper_class, dtype, tol):
    model = _bn_dropout_lm(dtype)
    K, T0, T1 = 3, 6, 10
    ids = torch.randint(1, 8, (K, T0 + T1), generator=torch.Generator().manual_seed(3))
    for start in (0, T0):                            # from zeros, and after a start text
        with torch.no_grad():
            model.reset_states()
            full = model(ids).numpy()                 # (K, T0+T1, V)
            model.reset_states()
            if start:
                model(ids[:, :start])                 # the states are remembered
        stepper = stepper_class(model, K)
        if stepper_class is TorchStepper:
            tol = max(tol, 1e-7)                      # it hands back float32 scores
        for t in range(start, T0 + T1):
            scores = stepper.step(ids[:, t].numpy())
            np.testing.assert_allclose(scores, full[:, t], rtol=0, atol=tol)
    assert np.abs(full[0, -1] - full[1, -1]).max() > 1e-2    # the streams really differ


class _ForwardStepper:
    """The plain path: the model's own forward pass on one token at a time."""

    def __init__(self, model, num_streams):
        self.model = model

    def plan(self, steps):
        pass

    def step(self, ids):
        with torch.no_grad():
            return self.model(torch.from_numpy(ids).view(-1, 1))[:, -1].numpy()


@pytest.mark.parametrize("start_text", ["", "ROMEO:"])
def test_seeded_samples_are_the_same_through_every_path(start_text, monkeypatch):
    model = _charrnn_gru_model().float()
    texts = {}
    for name, stepper in [("numpy", NumpyStepper), ("torch", TorchStepper),
                          ("forward", _ForwardStepper)]:
        monkeypatch.setattr(sampling, "choose_stepper", stepper)
        texts[name] = model.sample(100, start_text, seed=123, num_samples=2)
    assert texts["numpy"] == texts["torch"] == texts["forward"]
    assert texts["numpy"][0] != texts["numpy"][1]
    assert all(text.startswith(start_text) and len(text) == 100 for text in texts["numpy"])
    monkeypatch.undo()
    assert sampling.choose_stepper(model, 1).__class__ is NumpyStepper   # what sample uses
    assert model.sample(100, start_text, seed=123, num_samples=2) == texts["numpy"]


# -- checkpoints ---------------------------------------------------------------------------

def _checkpoint_of(model):
    return {"model": model, "i": 7, "opt": {"model_type": "gru", "rnn_size": 6},
            "train_loss_history": [4.5, 4.25], "val_loss_history": [4.0],
            "val_loss_history_it": [2], "forward_backward_times": [], "memory_usage": []}


def test_t7_and_json_round_trip_exactly(tmp_path):
    model = _bn_dropout_lm(torch.float32)
    ckpt.save_checkpoint(tmp_path / "a.t7", _checkpoint_of(model))
    loaded = ckpt.load_checkpoint(tmp_path / "a.t7")
    back = loaded.model
    assert back.model_type == "gru" and back.dropout == pytest.approx(0.2)
    assert back.batchnorm == 1 and isinstance(back.rnns[1], GRU)
    for key, value in model.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key
    ids = torch.tensor([[1, 2, 3, 7, 5, 4]])
    back.eval()
    with torch.no_grad():
        model.reset_states()
        torch.testing.assert_close(back(ids), model(ids), rtol=0, atol=0)
    json_text = (tmp_path / "a.json").read_text()
    assert ckpt.read_checkpoint_json(tmp_path / "a.json")["opt"]["model_type"] == "gru"
    loaded.save(str(tmp_path / "b.t7"))                  # read and written again: same bytes
    assert (tmp_path / "a.t7").read_bytes() == (tmp_path / "b.t7").read_bytes()
    assert (tmp_path / "b.json").read_text() == json_text


def test_t7_gru_module_has_the_forks_fields(tmp_path):
    gru_lm, lstm_lm = _lm(), LanguageModel(_lm().vocab, "lstm", 4, 6, 2)
    gru_t7, lstm_t7 = ckpt.model_to_t7(gru_lm), ckpt.model_to_t7(lstm_lm)
    assert gru_t7["model_type"] == "gru"
    layers = gru_t7["net"]["modules"][1:3]                # a list: after the LookupTable
    assert [m.class_name for m in layers] == ["nn.GRU", "nn.GRU"]
    lstm_fields = set(lstm_t7["net"]["modules"][1].fields)
    # GRU.lua's fields: the LSTM's without the cell state's and recompute_backward
    assert set(layers[0].fields) == lstm_fields - {"c0", "grad_c0", "_return_grad_c0",
                                                   "recompute_backward"}
    first = layers[0]
    assert (first["input_dim"], first["hidden_dim"]) == (4, 6)
    assert first["weight"].shape == (10, 18) and first["bias"].shape == (18,)
    assert first["weight"].dtype == torch.float32 and first["remember_states"] is True
    assert first["gradInput"] is first["grad_x"]
    assert torch.equal(first["weight"], gru_lm.rnns[0].weight.detach())
    # what is written reads back (through the .t7 bytes)
    write_t7(tmp_path / "bare.t7", gru_t7)
    back = ckpt.load_checkpoint(tmp_path / "bare.t7").model
    assert torch.equal(back.rnns[1].bias, gru_lm.rnns[1].bias)


def test_t7_mixing_gru_and_lstm_layers_is_one_line(tmp_path):
    lm = ckpt.model_to_t7(_lm())
    lm["net"]["modules"][2].class_name = "nn.LSTM"
    write_t7(tmp_path / "mixed.t7", lm)
    with pytest.raises(TorchRNNError, match=r"mixed\.t7: .*mixes recurrent layers of "
                                            r"different types \(nn\.GRU, nn\.LSTM\)"):
        ckpt.load_checkpoint(tmp_path / "mixed.t7")


def test_t7_gru_of_the_wrong_width_is_one_line(tmp_path):
    lm = ckpt.model_to_t7(_lm())
    layer = lm["net"]["modules"][1]
    layer.fields["bias"] = layer["bias"][:17]            # not a multiple of 3
    write_t7(tmp_path / "bad.t7", lm)
    with pytest.raises(TorchRNNError, match=r"bad\.t7: .*nn\.GRU\.bias has 17 elements, "
                                            r"expected a positive multiple of 3"):
        ckpt.load_checkpoint(tmp_path / "bad.t7")


# -- torchrnn-train -model_type gru, and what uses its checkpoints ---------------------------

def _train_options(tiny, name, **overrides):
    """Tiny runs: 7 iterations of (2, 50) per epoch, two layers of 8."""
    opt = dict(input_h5=tiny, input_json=str(JSON), model_type="gru", batch_size=2,
               seq_length=50, rnn_size=8, wordvec_size=4, num_layers=2, max_epochs=1,
               gpu=-1, checkpoint_every=5, print_every=1, seed=3, checkpoint_name=str(name))
    opt.update(overrides)
    return opt


def _flags(opt):
    return [item for key, value in opt.items() for item in ("-" + key, str(value))]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return str(make_tiny_h5(tmp_path_factory.mktemp("gru_data")))


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    """``torchrnn-train -model_type gru -seed 3``, 7 iterations: (its stdout, cp_7.t7)."""
    tmp = tmp_path_factory.mktemp("gru_train")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = train_cli.main(_flags(_train_options(tiny, tmp / "cp")))
    assert rc == 0
    return out.getvalue(), tmp / "cp_7.t7"


def _first_batch_loss(model, tiny):
    x, y = DataLoader(tiny, 2, 50).next_batch("train")
    model.train()
    model.reset_states()
    with torch.no_grad():
        return "%f" % torch7_loss_value(model(x), y)


def test_train_gru_prints_train_luas_lines_and_writes_a_gru(trained, tiny):
    out, path = trained
    lines = out.splitlines()
    assert lines[0] == "Running in CPU mode"
    losses = [float(m.group(1)) for m in map(LOSS_LINE.match, lines) if m]
    assert len(losses) == 7 and losses[-1] < losses[0]
    assert sum(line.startswith("val_loss = \t") for line in lines) == 2     # at 5 and 7
    checkpoint = ckpt.load_checkpoint(path)
    assert checkpoint.opt["model_type"] == "gru" and checkpoint.i == 7
    assert all(isinstance(rnn, GRU) for rnn in checkpoint.model.rnns)
    assert read_t7(path)["model"]["net"]["modules"][2].class_name == "nn.GRU"
    # -seed 3 drew the GRU's weights in GRU.lua's order: the first loss is that model's
    model = LanguageModel(read_vocab(JSON), "gru", 4, 8, 2, generator=TorchGenerator(3))
    assert "%f" % losses[0] == _first_batch_loss(model, tiny)


def test_parameter_count_of_a_gru():
    model = LanguageModel({k: chr(64 + k) for k in range(1, 30)}, "gru", 5, 7, 3, batchnorm=1)
    assert model_parameter_count("gru", 29, 5, 7, 3, 1) == \
        sum(p.numel() for p in model.parameters())


def test_resume_equals_uninterrupted(tiny, tmp_path):
    # from cp_5 across the epoch end at 7 (a learning-rate decay, Adam's state dropped)
    opt = _train_options(tiny, tmp_path / "full" / "cp", max_epochs=2, dropout=0.3,
                         lr_decay_every=1)
    full = train_mod.train(**opt)
    assert full["i"] == 14
    resumed = train_mod.train(resume_from=str(tmp_path / "full" / "cp_5.t7"),
                              checkpoint_name=str(tmp_path / "resumed" / "cp"))
    for key in ("train_loss_history", "val_loss_history", "val_loss_history_it", "i"):
        assert full[key] == resumed[key], key
    assert resumed["model"].model_type == "gru"
    for (name, a), (_, b) in zip(full["model"].state_dict().items(),
                                 resumed["model"].state_dict().items()):
        assert torch.equal(a, b), name


def test_init_from_continues_the_gru(trained, tiny, tmp_path):
    _, path = trained
    # -model_type is the default lstm: the model (a GRU) comes from the checkpoint
    result = train_mod.train(**_train_options(tiny, tmp_path / "cp", init_from=str(path),
                                              model_type="lstm", seed=4))
    assert result["model"].model_type == "gru" and result["i"] == 7
    assert "%f" % result["train_loss_history"][0] == \
        _first_batch_loss(ckpt.load_checkpoint(path).model, tiny)


def test_sample_and_eval_on_the_trained_gru(trained, tiny, capsys):
    _, path = trained
    assert sample_cli.main(["-checkpoint", str(path), "-length", "60", "-seed", "5",
                            "-gpu", "-1"]) == 0
    out, err = capsys.readouterr()
    model = ckpt.load_model(path)
    assert out == model.sample(60, seed=5) + "\n" and err == ""
    assert eval_cli.main(["-checkpoint", str(path), "-input_h5", tiny, "-split", "val",
                          "-gpu", "-1"]) == 0
    out, _ = capsys.readouterr()
    loss = float(out.splitlines()[-1].split(" = ")[1])
    # train validated the same model on the same split at i = 7
    assert loss == pytest.approx(ckpt.load_checkpoint(path).val_loss_history[-1], abs=1e-6)


def test_torchrun_two_processes_give_the_losses_of_one(tiny, tmp_path):
    """Slow (torchrun starts two processes that import torch, 5-15 s): the GRU under
    DistributedDataParallel, each process one of the two streams."""
    opt = _train_options(tiny, tmp_path / "k1" / "cp", dropout=0.3,
                         log_csv=str(tmp_path / "k1.csv"))
    single = train_mod.train(**opt)
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
            "2", "-m", "torchrnn_py.train"] + _flags(dict(
                opt, checkpoint_name=str(tmp_path / "k2" / "cp"),
                log_csv=str(tmp_path / "k2.csv")))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    double = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=tmp_path,
                            env=env)
    assert double.returncode == 0, double.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / "k2.csv")))
    assert len(rows) == len(single["train_loss_history"]) == 7
    for a, row in zip(single["train_loss_history"], rows):
        assert abs(a - float(row["loss"])) < 1e-5
    two = ckpt.load_checkpoint(tmp_path / "k2" / "cp_7.t7").model
    assert two.model_type == "gru"
    for (name, a), (_, b) in zip(single["model"].state_dict().items(),
                                 two.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-4, rtol=0), name


def test_the_package_exports_every_public_name_it_lists():
    """``torchrnn_py.GRU`` as docs/api.md shows it, and every other lazily exported name."""
    import torchrnn_py
    from torchrnn_py import modules
    assert torchrnn_py.GRU is modules.GRU
    for name in torchrnn_py.__all__:
        assert getattr(torchrnn_py, name) is not None, name
