"""What the GPU path needs, proven on the CPU: the weights handed to the fused kernel are
what cuDNN accepts as its own buffer (an emulation of its checks and of its fallback copy),
the precision chosen for CUDA, the remembered state following ``.to()``, a backward in
evaluation mode through the kernel's training mode, and the GPU sampling stepper."""
import warnings

import numpy as np
import pytest
import torch

from torchrnn_py import device as device_mod
from torchrnn_py import modules
from torchrnn_py.model import LanguageModel
from torchrnn_py.modules import LSTM, VanillaRNN
from torchrnn_py.rng import TorchGenerator
from torchrnn_py.sampling import NumpyStepper, TorchStepper, sample_ids

ORDER = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")


def cudnn_weight_buffer(params, G, D, H):
    """What aten/src/ATen/native/cudnn/RNN.cpp's try_get_weight_buf checks before it uses
    the weights as its buffer: the first tensor's whole storage, from its start, holds at
    least G(D+H) + 2G numbers; w_ih, w_hh, b_ih, b_hh start where cuDNN's layout puts them
    (packed, in that order); the last one is contiguous. Returns that buffer, or None (then
    cuDNN copies each tensor itself, see cudnn_fallback_copy)."""
    tensors = [params[name] for name in ORDER]
    first = tensors[0]
    numel = first.untyped_storage().nbytes() // first.element_size()
    buf = first.new_empty(0).set_(first.untyped_storage(), 0, (numel,))
    if numel < G * (D + H) + 2 * G:
        return None
    expected = [0, G * D, G * (D + H), G * (D + H) + G]
    for tensor, offset in zip(tensors, expected):
        if tensor.data_ptr() != buf.data_ptr() + offset * buf.element_size():
            return None
    if not tensors[-1].is_contiguous():
        return None
    return buf[:G * (D + H) + 2 * G]


def cudnn_fallback_copy(params):
    """cuDNN's own copy when the check fails: ``param_to.copy_(param_from.view_as(param_to))``
    into a ``(numel, 1)`` slot of its buffer, one per tensor."""
    for name in ORDER:
        slot = params[name].new_empty(params[name].numel(), 1)
        slot.copy_(params[name].view_as(slot))


def kernel_params(rnn, x):
    """The parameters the module hands its kernel for input x, caught at the call."""
    caught = {}
    real = modules.functional_call

    def spy(kernel, params, args):
        caught.update(params, training=kernel.training)
        return real(kernel, params, args)

    modules.functional_call = spy
    try:
        out = rnn(x)
    finally:
        modules.functional_call = real
    return caught, out


@pytest.mark.parametrize("cls,gates", [(LSTM, 4), (VanillaRNN, 1)])
def test_kernel_weights_are_cudnns_own_flat_buffer(cls, gates):
    D, H = 5, 3
    rnn = cls(D, H)
    with torch.no_grad():
        rnn.bias.uniform_(-1, 1)
    params, _ = kernel_params(rnn, torch.randn(2, 4, D))
    buf = cudnn_weight_buffer(params, gates * H, D, H)
    assert buf is not None, "cuDNN would not take these weights as its buffer"
    cudnn_fallback_copy(params)                      # and its own copy would work too
    # the buffer holds torch-rnn's weights in PyTorch's gate order
    order = modules.lstm_gate_permutation(H) if cls is LSTM else torch.arange(H)
    W = rnn.weight.detach()[:, order]                                     # (D+H, G)
    expect = torch.cat([W[:D].t().reshape(-1), W[D:].t().reshape(-1),
                        rnn.bias.detach()[order], torch.zeros(gates * H)])
    assert torch.equal(buf, expect)


def test_emulation_refuses_the_old_transposed_weights():
    """The emulation can fail: the layout before the fix (transposed views) is refused by
    the check, and cuDNN's fallback copy raises on it, as on a GPU."""
    D, H = 5, 3
    weight, bias = torch.randn(D + H, 4 * H), torch.randn(4 * H)
    old = {"weight_ih_l0": weight[:D].t(), "weight_hh_l0": weight[D:].t(),
           "bias_ih_l0": bias, "bias_hh_l0": torch.zeros_like(bias)}
    assert cudnn_weight_buffer(old, 4 * H, D, H) is None
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        cudnn_fallback_copy(old)


def test_gradients_reach_torch_rnn_weight_and_bias_without_warnings():
    D, H = 4, 3
    torch.manual_seed(0)
    rnn = LSTM(D, H).double()
    with torch.no_grad():
        rnn.bias.uniform_(-1, 1)
    x = torch.randn(2, 5, D, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")              # no "not part of single contiguous chunk"
        rnn(x).sum().backward()
    # the same through the reference layout, written out in plain ops
    w = rnn.weight.detach().clone().requires_grad_()
    b = rnn.bias.detach().clone().requires_grad_()
    h = c = x.new_zeros(2, H)
    total = 0
    for t in range(5):
        a = x[:, t] @ w[:D] + h @ w[D:] + b
        i, f, o = torch.sigmoid(a[:, :3 * H]).split(H, 1)
        c = f * c + i * torch.tanh(a[:, 3 * H:])
        h = o * torch.tanh(c)
        total = total + h.sum()
    total.backward()
    assert torch.allclose(rnn.weight.grad, w.grad, atol=1e-12)
    assert torch.allclose(rnn.bias.grad, b.grad, atol=1e-12)


def test_backward_in_eval_mode_runs_the_kernel_in_training_mode():
    D, H = 4, 3
    rnn = LSTM(D, H).double()
    x = torch.randn(2, 5, D, dtype=torch.float64)
    rnn.train()
    _, out_train = kernel_params(rnn, x)
    out_train.sum().backward()
    grad_train = rnn.weight.grad.clone()
    rnn.weight.grad = None
    rnn.eval()
    params, out_eval = kernel_params(rnn, x)
    assert params["training"] is True                  # cuDNN refuses a backward otherwise
    out_eval.sum().backward()
    assert torch.equal(out_eval, out_train)
    assert torch.allclose(rnn.weight.grad, grad_train, atol=1e-12)
    with torch.no_grad():
        params, _ = kernel_params(rnn, x)
    assert params["training"] is False                 # no grad: the lean inference kernel


@pytest.mark.parametrize("cls", [LSTM, VanillaRNN])
def test_remembered_state_follows_to(cls):
    rnn = cls(3, 2)
    rnn.remember_states = True
    rnn(torch.randn(2, 4, 3))
    before = rnn.state
    rnn.to(torch.float64)
    assert all(s.dtype == torch.float64 for s in rnn.state)
    assert all(torch.equal(a.double(), b) for a, b in zip(before, rnn.state))
    rnn(torch.randn(2, 1, 3, dtype=torch.float64))     # continues from the moved state
    rnn.to("meta")                                     # a device move, as .to("cuda") is
    assert all(s.device.type == "meta" for s in rnn.state)


def test_cuda_precision_defaults_to_ieee_fp32_and_opt_in_changes_it():
    assert device_mod.cuda_precision_settings("fp32") == {
        "rnn": "ieee", "conv": "ieee", "matmul": "ieee", "autocast": None}
    assert device_mod.cuda_precision_settings("tf32")["rnn"] == "tf32"
    assert device_mod.cuda_precision_settings("tf32")["matmul"] == "tf32"
    assert device_mod.cuda_precision_settings("bf16")["autocast"] is torch.bfloat16
    assert device_mod.cuda_precision_settings("fp16")["autocast"] is torch.float16
    with pytest.raises(device_mod.TorchRNNError, match="-precision"):
        device_mod.cuda_precision_settings("tf16")
    saved = torch.backends.cudnn.rnn.fp32_precision, torch.backends.cuda.matmul.fp32_precision
    try:
        torch.backends.cudnn.rnn.fp32_precision = "tf32"     # torch's own default for RNNs
        device_mod.apply_cuda_precision("fp32")
        assert torch.backends.cudnn.rnn.fp32_precision == "ieee"
        assert torch.backends.cuda.matmul.fp32_precision == "ieee"
    finally:
        torch.backends.cudnn.rnn.fp32_precision = saved[0]
        torch.backends.cuda.matmul.fp32_precision = saved[1]


@pytest.mark.parametrize("name,start", [("lstm_bn_dropout_cp_159", ""),
                                        ("lstm_small_cp_159", "the"),
                                        ("rnn_small_cp_159", "")])
def test_torch_stepper_on_the_cpu_gives_the_numpy_steppers_samples(name, start):
    """The GPU stepper, run here on the CPU, samples exactly the numpy stepper's text."""
    from conftest import GOLDEN
    from torchrnn_py.checkpoint import load_model
    import torchrnn_py.sampling as sampling
    model = load_model(str(GOLDEN / "checkpoints" / f"{name}.t7"))

    def texts():
        ids = list(sample_ids(model, 120, start, True, 1.0, TorchGenerator(3), 2))
        return [model.decode(row) for row in np.stack(ids, 1)]

    expected = texts()                                   # the numpy stepper (CPU model)
    real = sampling.choose_stepper
    sampling.choose_stepper = lambda m, k: TorchStepper(m, k)
    try:
        assert texts() == expected
    finally:
        sampling.choose_stepper = real


def test_choose_stepper_numpy_on_the_cpu_torch_for_many_streams_off_it():
    from torchrnn_py.sampling import choose_stepper
    model = LanguageModel({i: chr(64 + i) for i in range(1, 11)}, rnn_size=16, wordvec_size=8)
    assert isinstance(choose_stepper(model, 64), NumpyStepper)          # on the CPU: numpy
    model.to("meta")                                    # off the CPU (as on a GPU) ...
    assert isinstance(choose_stepper(model, 64), TorchStepper)          # ... many streams


# -- the CUDA-graph path of the GPU stepper, driven on the CPU through its capture seam ------

def _gru_bn_model():
    """A GRU model with batch normalisation (running statistics made up) and v1 dropout,
    its weights scaled up so that the samples depend on the state (as a trained one's do)."""
    model = LanguageModel({i: ch for i, ch in enumerate("abcdefgh ", 1)}, "gru", 5, 12, 2,
                          dropout=0.2, batchnorm=1, generator=TorchGenerator(7)).eval()
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for weight in [rnn.weight for rnn in model.rnns] + [model.linear.weight]:
            weight.mul_(3)
        for bn in model.batchnorms:
            bn.running_mean.copy_(0.3 * torch.randn(12, generator=g))
            bn.running_var.copy_(0.5 + torch.rand(12, generator=g))
    return model


def _model(name):
    from conftest import GOLDEN
    from torchrnn_py.checkpoint import load_model
    if name == "gru_bn":
        return _gru_bn_model()
    return load_model(str(GOLDEN / "checkpoints" / f"{name}.t7"))


class _Captures:
    """A stand-in for sampling._capture that records each call (and the states the warm-up
    left behind) and returns the step itself, as the real one does off CUDA."""

    def __init__(self, stepper_states, error=None):
        self.calls, self.states, self.error, self.stepper_states = [], [], error, stepper_states

    def __call__(self, fn, device):
        self.calls.append(fn)
        self.states.append([t.clone() for t in self.stepper_states()])
        if self.error is not None:
            raise self.error
        return fn


def _states(stepper):
    return [t for layer in stepper.layers for t in (layer["h"], layer["c"]) if t is not None]


@pytest.mark.parametrize("name,start,K", [("lstm_bn_dropout_cp_159", "", 1),
                                          ("lstm_small_cp_159", "the", 3),
                                          ("rnn_small_cp_159", "", 2),
                                          ("rnn_small_cp_159", "To", 1),
                                          ("gru_bn", "bad", 2)])
def test_graph_path_on_the_cpu_gives_the_numpy_steppers_samples(name, start, K, monkeypatch):
    """The capture path (static buffers, warm-up, states put back, the replay) samples
    exactly the numpy stepper's text, and sample_ids tells it how many steps it takes."""
    import torchrnn_py.sampling as sampling
    model = _model(name)
    length = sampling.GRAPH_MIN_STEPS + len(start) + 20

    def texts():
        ids = list(sample_ids(model, length, start, True, 1.0, TorchGenerator(3), K))
        return [model.decode(row) for row in np.stack(ids, 1)]

    expected = texts()                                   # the numpy stepper (CPU model)
    made = []
    monkeypatch.setattr(sampling, "choose_stepper",
                        lambda m, k: made.append(TorchStepper(m, k, graphs=True)) or made[-1])
    monkeypatch.setattr(sampling, "_capture", _Captures(lambda: _states(made[-1])))
    assert texts() == expected
    stepper = made[0]
    assert stepper.path == "graph" and len(sampling._capture.calls) == 1
    assert stepper.steps_run == stepper.planned == length - len(start) - 1


def test_graph_warm_up_really_runs_and_the_states_are_put_back(monkeypatch):
    """The warm-up before a capture advances h and c (after a start text); they are put
    back, so every replayed step gives the eager stepper's scores bit for bit."""
    import torchrnn_py.sampling as sampling
    model = _model("lstm_small_cp_159")
    model.reset_states()
    with torch.no_grad():
        model(torch.tensor([[3, 9, 4], [1, 2, 3]]))     # remembered states, K = 2
    eager = TorchStepper(model, 2, graphs=False)
    graph = TorchStepper(model, 2, graphs=True)
    before = [t.clone() for t in _states(graph)]
    monkeypatch.setattr(sampling, "_capture", _Captures(lambda: _states(graph)))
    graph.plan(sampling.GRAPH_MIN_STEPS)
    for ids in ([5, 5], [9, 1], [40, 2], [7, 7]):
        ids = np.array(ids, dtype=np.int64)
        assert np.array_equal(graph.step(ids), eager.step(ids))
    model.reset_states()
    (at_capture,) = sampling._capture.states
    assert len(at_capture) == 4                                       # h, c of two layers
    assert all(not torch.equal(a, b) for a, b in zip(at_capture, before))
    assert graph.path == "graph" and eager.path == "eager"


def test_a_failed_capture_stays_eager_with_the_same_results(monkeypatch):
    import torchrnn_py.sampling as sampling
    model = _gru_bn_model()
    eager = TorchStepper(model, 3, graphs=False)
    graph = TorchStepper(model, 3, graphs=True)
    failing = _Captures(lambda: _states(graph), RuntimeError("CUDA graphs are not supported"))
    monkeypatch.setattr(sampling, "_capture", failing)
    graph.plan(100)
    rng = np.random.default_rng(1)
    for _ in range(12):
        ids = rng.integers(1, model.vocab_size + 1, 3)
        assert np.array_equal(graph.step(ids), eager.step(ids))   # the warm-up was undone
    assert graph.path == "eager" and "not supported" in graph.capture_error
    assert len(failing.calls) == 1                                 # tried once, not per step


def test_graph_capture_rule(monkeypatch):
    """Captured when the planned steps reach GRAPH_MIN_STEPS, or when unplanned once that
    many have run; never for fewer, and never by default off CUDA."""
    import torchrnn_py.sampling as sampling
    model = LanguageModel({i: ch for i, ch in enumerate("abc", 1)}, rnn_size=4, wordvec_size=3)
    N = sampling.GRAPH_MIN_STEPS
    ids = np.array([1, 2], dtype=np.int64)
    for graphs, planned, capture_at in ((True, N, 0), (True, N - 1, None), (True, None, N),
                                        (None, N, None), (False, N, None)):
        stepper = TorchStepper(model, 2, graphs=graphs)
        calls = _Captures(lambda: _states(stepper))
        monkeypatch.setattr(sampling, "_capture", calls)
        if planned is not None:
            stepper.plan(planned)
        at = []
        for n in range(N + 2):
            stepper.step(ids)
            at += [n] * len(calls.calls)
            calls.calls.clear()
        assert at == ([] if capture_at is None else [capture_at]), (graphs, planned)
        assert stepper.path == ("eager" if capture_at is None else "graph")


def _natives_case(native, natives, world=1, dropout=True):
    from torchrnn_py.distributed import Context
    from torchrnn_py.training_state import restore_native as _restore_native
    said = []
    _restore_native(native, natives, Context(0, world, 0), dropout, said.append)
    return said


def test_resume_says_when_the_dropout_masks_restart():
    gen = torch.Generator()
    gen.manual_seed(5)
    state = gen.get_state()
    fresh = torch.Generator()
    assert _natives_case(fresh, [state]) == []                     # same device: continues
    assert torch.equal(fresh.get_state(), state)
    # a CPU (or seeded) checkpoint resumed unseeded on a GPU; another world size; GPU -> CPU
    for native, natives, world in ((fresh, [None], 1), (fresh, [state], 2), (None, [state], 1)):
        said = _natives_case(native, natives, world)
        assert len(said) == 1 and "restart" in said[0]
    assert _natives_case(None, [None]) == []                       # seeded: exact anyway
    assert _natives_case(fresh, [None], dropout=False) == []       # no dropout: no masks
