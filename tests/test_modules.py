"""torch-rnn's LSTM, VanillaRNN and Dropout modules against docs/compatibility.md ("model")
written out as a plain per-time-step loop (float64), plus gradcheck, state handling and
Torch7 dropout masks."""
import json

import numpy as np
import pytest
import torch
from torch.func import functional_call

from conftest import GOLDEN
from torchrnn_py.modules import LSTM, Dropout, VanillaRNN
from torchrnn_py.rng import TorchGenerator

DT = torch.float64


# -- the reference: the equations of docs/compatibility.md ("model"), one time step at a time ----------------------------

def ref_lstm(x, weight, bias, h0=None, c0=None):
    """x (N,T,D), weight (D+H,4H) with gate columns i,f,o,g; returns (out, h, c)."""
    N, T, D = x.shape
    H = bias.shape[0] // 4
    h = x.new_zeros(N, H) if h0 is None else h0
    c = x.new_zeros(N, H) if c0 is None else c0
    Wx, Wh = weight[:D], weight[D:]
    outs = []
    for t in range(T):
        a = x[:, t] @ Wx + h @ Wh + bias
        i = torch.sigmoid(a[:, 0:H])
        f = torch.sigmoid(a[:, H:2 * H])
        o = torch.sigmoid(a[:, 2 * H:3 * H])
        g = torch.tanh(a[:, 3 * H:4 * H])
        c = f * c + i * g
        h = o * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs, 1), h, c


def ref_rnn(x, weight, bias, h0=None):
    N, T, D = x.shape
    H = bias.shape[0]
    h = x.new_zeros(N, H) if h0 is None else h0
    outs = []
    for t in range(T):
        h = torch.tanh(x[:, t] @ weight[:D] + h @ weight[D:] + bias)
        outs.append(h)
    return torch.stack(outs, 1), h


def _randomised(module, seed=0, scale=0.5):
    g = torch.Generator().manual_seed(seed)
    module.double()
    with torch.no_grad():
        module.weight.copy_(torch.randn(module.weight.shape, generator=g, dtype=DT) * scale)
        module.bias.copy_(torch.randn(module.bias.shape, generator=g, dtype=DT) * scale)
    return module


def _rand(*shape, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=DT)


# -- forward, state, gradients ----------------------------------------------------------

@pytest.mark.parametrize("with_initial", [False, True])
def test_lstm_forward_and_final_state_match_equations(with_initial):
    N, T, D, H = 3, 6, 5, 4
    lstm = _randomised(LSTM(D, H))
    x = _rand(N, T, D, seed=2)
    h0 = _rand(N, H, seed=3) if with_initial else None
    c0 = _rand(N, H, seed=4) if with_initial else None
    out = lstm(x, h0, c0)
    exp_out, exp_h, exp_c = ref_lstm(x, lstm.weight.detach(), lstm.bias.detach(), h0, c0)
    assert out.shape == (N, T, H) and out.dtype == DT
    torch.testing.assert_close(out, exp_out, rtol=0, atol=1e-10)
    h, c = lstm.state
    torch.testing.assert_close(h, exp_h, rtol=0, atol=1e-10)
    torch.testing.assert_close(c, exp_c, rtol=0, atol=1e-10)


@pytest.mark.parametrize("with_initial", [False, True])
def test_rnn_forward_and_final_state_match_equations(with_initial):
    N, T, D, H = 3, 6, 5, 4
    rnn = _randomised(VanillaRNN(D, H))
    x = _rand(N, T, D, seed=2)
    h0 = _rand(N, H, seed=3) if with_initial else None
    out = rnn(x, h0)
    exp_out, exp_h = ref_rnn(x, rnn.weight.detach(), rnn.bias.detach(), h0)
    torch.testing.assert_close(out, exp_out, rtol=0, atol=1e-10)
    (h,) = rnn.state
    torch.testing.assert_close(h, exp_h, rtol=0, atol=1e-10)


def test_lstm_gradients_match_equations():
    N, T, D, H = 2, 5, 3, 4
    lstm = _randomised(LSTM(D, H), seed=5)
    x = _rand(N, T, D, seed=6).requires_grad_()
    h0 = _rand(N, H, seed=7).requires_grad_()
    c0 = _rand(N, H, seed=8).requires_grad_()
    R = _rand(N, T, H, seed=9)
    out = lstm(x, h0, c0)
    ours = torch.autograd.grad((out * R).sum(), [x, lstm.weight, lstm.bias, h0, c0])

    w = lstm.weight.detach().clone().requires_grad_()
    b = lstm.bias.detach().clone().requires_grad_()
    exp_out, _, _ = ref_lstm(x, w, b, h0, c0)
    expected = torch.autograd.grad((exp_out * R).sum(), [x, w, b, h0, c0])
    for name, a, e in zip(["x", "weight", "bias", "h0", "c0"], ours, expected):
        assert a.shape == e.shape, name
        torch.testing.assert_close(a, e, rtol=0, atol=1e-10, msg=name)
    # the gradient really reaches every gate block of the weight
    for k in range(4):
        assert ours[1][:, k * H:(k + 1) * H].abs().sum() > 0


def test_rnn_gradients_match_equations():
    N, T, D, H = 2, 5, 3, 4
    rnn = _randomised(VanillaRNN(D, H), seed=5)
    x = _rand(N, T, D, seed=6).requires_grad_()
    h0 = _rand(N, H, seed=7).requires_grad_()
    R = _rand(N, T, H, seed=9)
    out = rnn(x, h0)
    ours = torch.autograd.grad((out * R).sum(), [x, rnn.weight, rnn.bias, h0])
    w = rnn.weight.detach().clone().requires_grad_()
    b = rnn.bias.detach().clone().requires_grad_()
    exp_out, _ = ref_rnn(x, w, b, h0)
    expected = torch.autograd.grad((exp_out * R).sum(), [x, w, b, h0])
    for name, a, e in zip(["x", "weight", "bias", "h0"], ours, expected):
        torch.testing.assert_close(a, e, rtol=0, atol=1e-10, msg=name)


def test_gradcheck_lstm():
    N, T, D, H = 2, 3, 3, 2
    lstm = _randomised(LSTM(D, H), seed=11)

    def f(x, weight, bias, h0, c0):
        return functional_call(lstm, {"weight": weight, "bias": bias}, (x, h0, c0))

    inputs = (_rand(N, T, D, seed=12), lstm.weight.detach().clone(), lstm.bias.detach().clone(),
              _rand(N, H, seed=13), _rand(N, H, seed=14))
    inputs = tuple(t.requires_grad_() for t in inputs)
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7)


def test_gradcheck_rnn():
    N, T, D, H = 2, 3, 3, 2
    rnn = _randomised(VanillaRNN(D, H), seed=11)

    def f(x, weight, bias, h0):
        return functional_call(rnn, {"weight": weight, "bias": bias}, (x, h0))

    inputs = (_rand(N, T, D, seed=12), rnn.weight.detach().clone(), rnn.bias.detach().clone(),
              _rand(N, H, seed=13))
    inputs = tuple(t.requires_grad_() for t in inputs)
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7)


# -- remembered states ------------------------------------------------------------------

def test_lstm_remember_states_continues_then_resets():
    N, D, H = 2, 3, 4
    lstm = _randomised(LSTM(D, H), seed=20)
    lstm.remember_states = True
    x1, x2 = _rand(N, 4, D, seed=21), _rand(N, 3, D, seed=22)
    w, b = lstm.weight.detach(), lstm.bias.detach()
    out1 = lstm(x1)
    out2 = lstm(x2)
    full, _, _ = ref_lstm(torch.cat([x1, x2], 1), w, b)
    torch.testing.assert_close(out1, full[:, :4], rtol=0, atol=1e-10)
    torch.testing.assert_close(out2, full[:, 4:], rtol=0, atol=1e-10)

    lstm.reset_states()
    assert lstm.state is None
    fresh, _, _ = ref_lstm(x2, w, b)
    torch.testing.assert_close(lstm(x2), fresh, rtol=0, atol=1e-10)
    assert not torch.allclose(fresh, out2)        # so the continuation above was real

    # explicit h0/c0 win over the remembered state
    h0, c0 = _rand(N, H, seed=23), _rand(N, H, seed=24)
    given, _, _ = ref_lstm(x1, w, b, h0, c0)
    torch.testing.assert_close(lstm(x1, h0, c0), given, rtol=0, atol=1e-10)

    # a different batch size while remembering is an error...
    with pytest.raises(ValueError):
        lstm(_rand(N + 1, 3, D, seed=25))
    # ...but fine after a reset
    lstm.reset_states()
    assert lstm(_rand(N + 1, 3, D, seed=25)).shape == (N + 1, 3, H)


def test_rnn_remember_states_continues_then_resets():
    N, D, H = 2, 3, 4
    rnn = _randomised(VanillaRNN(D, H), seed=30)
    rnn.remember_states = True
    x1, x2 = _rand(N, 4, D, seed=31), _rand(N, 3, D, seed=32)
    w, b = rnn.weight.detach(), rnn.bias.detach()
    rnn(x1)
    out2 = rnn(x2)
    full, _ = ref_rnn(torch.cat([x1, x2], 1), w, b)
    torch.testing.assert_close(out2, full[:, 4:], rtol=0, atol=1e-10)
    rnn.reset_states()
    torch.testing.assert_close(rnn(x2), ref_rnn(x2, w, b)[0], rtol=0, atol=1e-10)
    h0 = _rand(N, H, seed=33)
    torch.testing.assert_close(rnn(x1, h0), ref_rnn(x1, w, b, h0)[0], rtol=0, atol=1e-10)
    with pytest.raises(ValueError):
        rnn(_rand(N + 2, 3, D, seed=34))


def test_without_remember_states_every_call_starts_from_zero():
    lstm = _randomised(LSTM(3, 4), seed=40)
    assert lstm.remember_states is False
    x = _rand(2, 3, 3, seed=41)
    first = lstm(x)
    torch.testing.assert_close(lstm(x), first, rtol=0, atol=0)
    # and a batch-size change is fine then
    assert lstm(_rand(5, 3, 3, seed=42)).shape == (5, 3, 4)


# -- initialisation ---------------------------------------------------------------------

def test_initial_bias_forget_gate_is_one():
    D, H = 5, 7
    lstm = LSTM(D, H)
    bias = lstm.bias.detach()
    assert torch.all(bias[H:2 * H] == 1)
    assert torch.all(bias[:H] == 0) and torch.all(bias[2 * H:] == 0)
    assert lstm.weight.shape == (D + H, 4 * H)
    rnn = VanillaRNN(D, H)
    assert rnn.weight.shape == (D + H, H)
    assert torch.all(rnn.bias.detach() == 0)


def test_seeded_weight_init_is_torch7_normal_row_major():
    D, H = 5, 7
    lstm = LSTM(D, H)
    lstm.reset_parameters(TorchGenerator(3))
    # Box-Muller (the golden README) on Torch7's uniforms, one value per element row-major
    u = TorchGenerator(3).uniform((D + H) * 4 * H)
    x, y = u[0::2], u[1::2]
    rho = np.sqrt(-2.0 * np.log(1.0 - y))
    values = np.empty_like(u)
    values[0::2] = rho * np.cos(2 * np.pi * x)
    values[1::2] = rho * np.sin(2 * np.pi * x)
    expected = torch.from_numpy(values / np.sqrt(D + H)).float().view(D + H, 4 * H)
    torch.testing.assert_close(lstm.weight.detach(), expected, rtol=0, atol=0)
    assert torch.all(lstm.bias.detach()[H:2 * H] == 1)


# -- dropout ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def uniforms20():
    with open(GOLDEN / "rng" / "rng_reference.json") as f:
        ref = json.load(f)
    return np.array([float(v) for v in ref["seed123_uniform_20"]])


def test_dropout_mask_is_torch7_uniforms(uniforms20):
    p = 0.3
    x = _rand(2, 2, 5, seed=50)                     # (N, T, H), 20 elements
    drop = Dropout(p)
    drop.generator = TorchGenerator(123)
    drop.train()
    out = drop(x)
    keep = torch.from_numpy(uniforms20 <= 1 - p).view(2, 2, 5)
    assert 0 < keep.sum() < 20                      # the reference mask drops some, keeps some
    expected = torch.where(keep, x / (1 - p), torch.zeros_like(x))
    torch.testing.assert_close(out, expected, rtol=1e-15, atol=0)


def test_dropout_mask_float32(uniforms20):
    p = 0.25
    x = torch.ones(4, 5, 1)
    drop = Dropout(p)
    drop.generator = TorchGenerator(123)
    out = drop.train()(x)
    keep = (uniforms20 <= 1 - p).reshape(4, 5, 1)
    expected = torch.from_numpy(keep.astype(np.float32)) / np.float32(1 - p)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_dropout_consecutive_calls_continue_the_stream(uniforms20):
    p = 0.3
    drop = Dropout(p)
    drop.generator = TorchGenerator(123)
    drop.train()
    a = drop(torch.ones(1, 1, 8, dtype=DT))
    b = drop(torch.ones(1, 3, 4, dtype=DT))
    got = torch.cat([a.reshape(-1), b.reshape(-1)]) != 0
    assert got.tolist() == (uniforms20 <= 1 - p).tolist()


def _old_torch7_dropout(x, keep, p):
    """The formula Dropout used before masks crossed as bool: the 0/1 noise converted to
    x's type on the host, divided by a (1 - p) tensor, times x."""
    noise = torch.from_numpy(keep).to(dtype=x.dtype).view_as(x)
    return x * (noise / torch.tensor(1.0 - p, dtype=x.dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
# at 0.15, 0.45 and 0.94, 1 / (1 - p) rounded once differs from Torch7's two roundings
@pytest.mark.parametrize("p", [0.15, 0.25, 0.3, 0.45, 0.94])
def test_dropout_bool_mask_is_bit_identical_to_float_noise(p, dtype):
    gen = torch.Generator().manual_seed(int(p * 100))
    x = (torch.randn(3, 7, 16, generator=gen) * 1e3).to(dtype)
    x[..., :4] = torch.tensor([float("inf"), -float("inf"), -0.0, 3e38]).to(dtype)
    grad_out = torch.randn(3, 7, 16, generator=gen).to(dtype)
    drop = Dropout(p).train()
    drop.generator = TorchGenerator(7)
    drop.rows = (1, 4, 5)                           # rows 1..3 of a 5-row batch
    xin = x.clone().requires_grad_()
    out = drop(xin)
    out.backward(grad_out)
    ref_gen = TorchGenerator(7)
    keep = ref_gen.bernoulli(5 * 7 * 16, 1 - p)[7 * 16:4 * 7 * 16]
    assert 0 < keep.sum() < keep.size
    xref = x.clone().requires_grad_()
    expected = _old_torch7_dropout(xref, keep, p)
    expected.backward(grad_out)
    assert torch.equal(out.isnan(), expected.isnan()) and out.isnan().any()   # inf * 0
    assert torch.equal(out.nan_to_num(), expected.nan_to_num())
    assert torch.equal(out.signbit(), expected.signbit())
    assert torch.equal(xin.grad, xref.grad)
    assert out.dtype == dtype


def test_dropout_mask_crosses_as_one_byte_per_element():
    from torchrnn_py.modules import _mask_to_device
    keep = np.array([True, False, True, True])
    mask = _mask_to_device(keep, torch.zeros(4))
    assert mask.dtype == torch.bool and mask.element_size() == 1
    assert mask.tolist() == keep.tolist()


def test_dropout_eval_identity_and_v1():
    x = _rand(2, 3, 4, seed=51)
    drop = Dropout(0.4)
    drop.eval()
    assert torch.equal(drop(x), x)

    v1 = Dropout(0.4, v2=False)
    v1.eval()
    torch.testing.assert_close(v1(x), x * 0.6, rtol=1e-15, atol=0)
    v1.generator = TorchGenerator(123)
    v1.train()
    out = v1(x)
    kept = out != 0
    assert 0 < kept.sum() < x.numel()
    torch.testing.assert_close(out[kept], x[kept], rtol=0, atol=0)     # no scaling


def test_dropout_v2_unseeded_training_scales():
    torch.manual_seed(0)
    x = torch.ones(50, 20, 10, dtype=DT)
    out = Dropout(0.5).train()(x)
    values = set(out.unique().tolist())
    assert values == {0.0, 2.0}


def test_dropout_zero_is_identity():
    x = _rand(2, 3, 4, seed=52)
    drop = Dropout(0)
    drop.generator = TorchGenerator(1)
    assert torch.equal(drop.train()(x), x)
    assert torch.equal(drop.eval()(x), x)


@pytest.mark.parametrize("p", [1, 1.5, -0.1])
def test_dropout_rejects_bad_p(p):
    with pytest.raises(ValueError):
        Dropout(p)
