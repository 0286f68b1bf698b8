"""TorchAdam = torch/optim's adam.lua, and torch-rnn's element-wise gradient clamp."""
import math

import pytest
import torch

from torchrnn_py.optim import TorchAdam, clamp_gradients_

DT = torch.float64


class AdamLua:
    """optim.adam (torch/optim adam.lua), per element, written from its formulas."""

    def __init__(self, lr, lr_decay=0.0, weight_decay=0.0, b1=0.9, b2=0.999, eps=1e-8):
        self.lr, self.lrd, self.wd = lr, lr_decay, weight_decay
        self.b1, self.b2, self.eps = b1, b2, eps
        self.t = 0
        self.m = self.v = None

    def step(self, x, g):
        if self.wd != 0:
            g = g + self.wd * x
        if self.m is None:
            self.m = torch.zeros_like(x)
            self.v = torch.zeros_like(x)
        clr = self.lr / (1 + self.t * self.lrd)
        self.t += 1
        self.m = self.b1 * self.m + (1 - self.b1) * g
        self.v = self.b2 * self.v + (1 - self.b2) * g * g
        denom = torch.sqrt(self.v) + self.eps
        step_size = clr * math.sqrt(1 - self.b2 ** self.t) / (1 - self.b1 ** self.t)
        return x - step_size * self.m / denom


def _grads(k, shape, seed=0):
    g = torch.Generator().manual_seed(seed + k)
    return torch.randn(shape, generator=g, dtype=DT) * (10.0 ** (k % 3 - 1))


@pytest.mark.parametrize("lr_decay,weight_decay", [(0.0, 0.0), (0.1, 0.0), (0.05, 0.01)])
def test_matches_adam_lua(lr_decay, weight_decay):
    shape = (4, 3)
    x0 = torch.randn(shape, generator=torch.Generator().manual_seed(99), dtype=DT)
    p = torch.nn.Parameter(x0.clone())
    opt = TorchAdam([p], lr=0.01, lr_decay=lr_decay, weight_decay=weight_decay)
    ref = AdamLua(0.01, lr_decay, weight_decay)
    x = x0.clone()
    for k in range(8):
        g = _grads(k, shape)
        p.grad = g.clone()
        opt.step()
        x = ref.step(x, g)
        torch.testing.assert_close(p.detach(), x, rtol=0, atol=1e-14)
    assert not torch.allclose(p.detach(), x0)


def test_defaults_are_adam_lua_defaults_for_train():
    # train.lua passes only learningRate: betas 0.9/0.999, eps 1e-8, no decay.
    group = TorchAdam([torch.nn.Parameter(torch.zeros(1))], lr=2e-3).param_groups[0]
    assert group["betas"] == (0.9, 0.999)
    assert group["eps"] == 1e-8
    assert group["weight_decay"] == 0 and group["lr_decay"] == 0


def test_epsilon_placement_differs_from_torch_adam():
    # With tiny gradients epsilon dominates: torch/optim adds it to the *uncorrected*
    # sqrt(v), PyTorch to the bias-corrected one.
    g = torch.full((5,), 1e-8, dtype=DT)
    a = torch.nn.Parameter(torch.zeros(5, dtype=DT))
    b = torch.nn.Parameter(torch.zeros(5, dtype=DT))
    ours, theirs = TorchAdam([a], lr=1e-3), torch.optim.Adam([b], lr=1e-3)
    a.grad, b.grad = g.clone(), g.clone()
    ours.step()
    theirs.step()
    expected = AdamLua(1e-3).step(torch.zeros(5, dtype=DT), g)
    torch.testing.assert_close(a.detach(), expected, rtol=1e-12, atol=0)
    # PyTorch: lr * 1e-8 / (1e-8 + 1e-8) = lr / 2; adam.lua: about lr * 0.03
    torch.testing.assert_close(b.detach(), torch.full((5,), -5e-4, dtype=DT), rtol=1e-6, atol=0)
    assert (a.detach() - b.detach()).abs().min() > 1e-4


def test_reset_state_restarts_bias_correction():
    shape = (6,)
    p = torch.nn.Parameter(torch.randn(shape, generator=torch.Generator().manual_seed(3),
                                       dtype=DT))
    opt = TorchAdam([p], lr=0.01)
    for k in range(5):
        p.grad = _grads(k, shape)
        opt.step()
    opt.reset_state()
    assert len(opt.state) == 0
    before = p.detach().clone()
    g = _grads(7, shape)
    p.grad = g.clone()
    opt.step()
    expected = AdamLua(0.01).step(before, g)       # t = 1 again, zero moments
    torch.testing.assert_close(p.detach(), expected, rtol=0, atol=1e-15)
    # a step that kept its state would have gone elsewhere
    q = torch.nn.Parameter(torch.randn(shape, generator=torch.Generator().manual_seed(3),
                                       dtype=DT))
    kept = TorchAdam([q], lr=0.01)
    for k in range(5):
        q.grad = _grads(k, shape)
        kept.step()
    q.grad = g.clone()
    kept.step()
    assert not torch.allclose(q.detach(), p.detach())


def test_learning_rate_change_in_param_groups_is_used():
    p = torch.nn.Parameter(torch.zeros(3, dtype=DT))
    opt = TorchAdam([p], lr=0.1)
    opt.param_groups[0]["lr"] = 0.05
    g = torch.tensor([1.0, -2.0, 3.0], dtype=DT)
    p.grad = g.clone()
    opt.step()
    torch.testing.assert_close(p.detach(), AdamLua(0.05).step(torch.zeros(3, dtype=DT), g),
                               rtol=0, atol=1e-15)


def test_skips_parameters_without_gradient():
    p = torch.nn.Parameter(torch.ones(2))
    q = torch.nn.Parameter(torch.ones(2))
    opt = TorchAdam([p, q], lr=0.1)
    p.grad = torch.ones(2)
    opt.step()
    assert torch.equal(q.detach(), torch.ones(2))
    assert not torch.equal(p.detach(), torch.ones(2))


def test_invalid_hyper_parameters():
    p = [torch.nn.Parameter(torch.ones(1))]
    with pytest.raises(ValueError):
        TorchAdam(p, lr=-1)
    with pytest.raises(ValueError):
        TorchAdam(p, betas=(1.0, 0.999))


def test_clamp_gradients_is_element_wise():
    p = torch.nn.Parameter(torch.zeros(5))
    p.grad = torch.tensor([-10.0, 3.0, 7.0, -2.0, 5.0])
    q = torch.nn.Parameter(torch.zeros(2))
    q.grad = torch.tensor([0.5, -6.0])
    r = torch.nn.Parameter(torch.zeros(2))          # no gradient: left alone
    clamp_gradients_([p, q, r], 5)
    assert p.grad.tolist() == [-5.0, 3.0, 5.0, -2.0, 5.0]     # 3 and -2 not rescaled
    assert q.grad.tolist() == [0.5, -5.0]
    assert r.grad is None


@pytest.mark.parametrize("clip", [0, -1])
def test_clamp_gradients_no_op_when_off(clip):
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.tensor([-100.0, 0.25, 1e6])
    clamp_gradients_([p], clip)
    assert p.grad.tolist() == [-100.0, 0.25, 1e6]


def _model_like_params(seed):
    """Parameters of a few shapes and two dtypes, some steps without a gradient."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(65, 16), (48, 64), (64,), (32, 64), (64,), (16, 65), (65,)]
    params = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in shapes]
    params.append(torch.nn.Parameter(torch.randn(7, 3, generator=gen, dtype=DT)))
    return params


def _run_adam(foreach, steps, weight_decay, lr_decay):
    params = _model_like_params(5)
    opt = TorchAdam(params, lr=2e-3, weight_decay=weight_decay, lr_decay=lr_decay,
                    foreach=foreach)
    gen = torch.Generator().manual_seed(6)
    for k in range(steps):
        for i, p in enumerate(params):
            g = torch.randn(p.shape, generator=gen, dtype=p.dtype) * 10.0 ** (k % 3 - 1)
            p.grad = None if (k + i) % 5 == 4 else g      # some tensors skip a step
        opt.step()
        if k == 3:
            opt.reset_state()                               # train.lua's decay quirk
            opt.param_groups[0]["lr"] *= 0.5
    return params, opt


@pytest.mark.parametrize("weight_decay,lr_decay", [(0.0, 0.0), (0.01, 0.1)])
def test_foreach_path_is_bit_identical_to_per_tensor(weight_decay, lr_decay):
    looped, opt_l = _run_adam(False, 8, weight_decay, lr_decay)
    fused, opt_f = _run_adam(True, 8, weight_decay, lr_decay)
    start = _model_like_params(5)
    for a, b, p0 in zip(looped, fused, start):
        assert torch.equal(a, b)
        assert not torch.equal(a, p0)
        sa, sb = opt_l.state[a], opt_f.state[b]
        assert sorted(sa) == sorted(sb) == ["m", "step", "v"]       # layout resume saves
        assert sa["step"] == sb["step"] and isinstance(sb["step"], int)
        assert torch.equal(sa["m"], sb["m"]) and torch.equal(sa["v"], sb["v"])
    # the skipped steps really left the counts per tensor different
    assert len({opt_f.state[p]["step"] for p in fused}) > 1


def test_foreach_default_is_per_tensor_on_cpu_and_foreach_on_cuda():
    from torchrnn_py.optim import _use_foreach
    assert _use_foreach(None, torch.device("cuda", 0))
    assert not _use_foreach(None, torch.device("cpu"))
    assert _use_foreach(True, torch.device("cpu")) and not _use_foreach(False, torch.device("cuda"))


def test_clamp_foreach_is_bit_identical_to_per_tensor():
    grads = [torch.randn(s, generator=torch.Generator().manual_seed(i)) * 8
             for i, s in enumerate([(30, 4), (5,), (2, 3, 4)])]
    grads.append(torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0, 5.0, -5.0],
                              dtype=DT))
    results = []
    for foreach in (False, True):
        params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        clamp_gradients_(params, 5, foreach=foreach)
        results.append([p.grad for p in params])
    for a, b in zip(*results):
        assert torch.equal(a.isnan(), b.isnan())
        assert torch.equal(a.nan_to_num(), b.nan_to_num())
        assert torch.equal(a.signbit(), b.signbit())
        assert a.nan_to_num().abs().max() <= 5
    assert results[1][3][1:].tolist() == [5.0, -5.0, -0.0, 5.0, -5.0]
