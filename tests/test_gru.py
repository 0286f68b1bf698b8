"""The GRU layer (char-rnn's equations in torch-rnn's layout) and GRU language models: the
hand-written backward against gradcheck and plain autograd, char-rnn's own forward dump,
seeded initialisation in GRU.lua's order, remembered states, steppers, checkpoints, train."""
import h5py
import numpy as np
import pytest
import torch

from conftest import FIXTURES
from torchrnn_py.model import LanguageModel
from torchrnn_py.modules import GRU, _GRUFunction
from torchrnn_py.rng import TorchGenerator
from torchrnn_py.t7 import read_t7

CHARRNN = FIXTURES / "charrnn"
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

def _charrnn_gru_model():
    """gru_2x64.t7's weights in a LanguageModel("gru") built here from its six Linears per
    layer (modules order: i2h_z, h2h_z, x->c, i2h_r, h2h_r, (r h)->c; fixtures README), the
    one-hot input as an identity embedding, in float64."""
    modules = read_t7(CHARRNN / "gru_2x64.t7")["protos"]["rnn"]["modules"]
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
