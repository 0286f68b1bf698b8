"""torch-rnn's recurrent layers as PyTorch modules, computed by PyTorch's fused kernels.

``LSTM`` and ``VanillaRNN`` keep torch-rnn's public parameters: ``weight`` of shape
``(D + H, G)`` (the first D rows multiply the input, the last H rows the previous hidden
state; G = 4H gate columns in the order i, f, o, g for the LSTM, G = H for the RNN) and
``bias`` of shape ``(G,)``. Each forward pass hands them to ``torch.nn.LSTM`` /
``torch.nn.RNN`` (cuDNN on a GPU, the fused CPU kernel otherwise) through
:func:`torchrnn_to_torch_layout`, the one place where the layouts are converted.

``GRU`` is char-rnn's GRU in the same layout (G = 3H: update z, reset r, candidate c), the
``nn.GRU`` of torch-rnn's forks; PyTorch's ``torch.nn.GRU`` computes another function, so
it has its own loop with a hand-written backward (:class:`_GRUFunction`).

``Dropout`` is torch-rnn's ``nn.Dropout`` (inverted, "v2"; "v1" for very old checkpoints)
that can take its masks from a :class:`~torchrnn_py.rng.TorchGenerator`, so that seeded
runs drop exactly the units the original drops.
"""
import functools

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable
from torch.func import functional_call

from .device import host_to_device
from .rng import TorchGenerator


def lstm_gate_permutation(hidden_dim, device=None):
    """Column order that turns torch-rnn's i, f, o, g gate blocks into PyTorch's i, f, g, o."""
    H = hidden_dim
    blocks = [torch.arange(0, H), torch.arange(H, 2 * H),          # i, f
              torch.arange(3 * H, 4 * H), torch.arange(2 * H, 3 * H)]  # g, o
    return torch.cat(blocks).to(device)


def torchrnn_to_torch_layout(weight, bias, input_dim, gate_order=None):
    """torch-rnn ``weight (D+H, G)``, ``bias (G)`` -> ``torch.nn.LSTM/RNN`` parameters.

    PyTorch keeps ``weight_ih (G, D)``, ``weight_hh (G, H)`` and two biases that are
    summed; torch-rnn has one bias, so ``bias_hh`` is zero. ``gate_order`` (an index
    over the G columns) reorders the gates; ``None`` keeps them. The four are contiguous
    views of one new flat tensor, in cuDNN's order ``w_ih | w_hh | b_ih | b_hh`` from its
    start, so cuDNN uses that tensor as its weight buffer as it is (it copies nothing,
    warns nothing). Differentiable: the gradients flow back to torch-rnn's layout.
    """
    D = input_dim
    G = weight.shape[1]
    H = weight.shape[0] - D
    w_t = weight.t()                                                  # (G, D+H), a view
    if gate_order is not None:
        w_t = w_t.index_select(0, gate_order)                         # (G, D+H), contiguous
        bias = bias.index_select(0, gate_order)
    flat = torch.cat([w_t[:, :D].reshape(-1), w_t[:, D:].reshape(-1), bias,
                      bias.new_zeros(G)])                             # (G(D+H) + 2G,)
    ih, hh = G * D, G * (D + H)
    return {
        "weight_ih_l0": flat[:ih].view(G, D),
        "weight_hh_l0": flat[ih:hh].view(G, H),
        "bias_ih_l0": flat[hh:hh + G],
        "bias_hh_l0": flat[hh + G:],
    }


class _Recurrent(nn.Module):
    """What the recurrent layers share: parameters, remembered states, the fused kernel
    (``_run``; the GRU has its own)."""

    gates = 1        # G / H
    has_cell = False

    def __init__(self, input_dim, hidden_dim, kernel=None):
        super().__init__()
        D, H = input_dim, hidden_dim
        self.input_dim, self.hidden_dim = D, H
        self.weight = nn.Parameter(torch.empty(D + H, self.gates * H))
        self.bias = nn.Parameter(torch.empty(self.gates * H))
        self.remember_states = False
        # The PyTorch module whose fused kernel we call, with its parameters on the meta
        # device (no memory): ours are passed in at each call. Kept in a tuple so that it
        # is a tool of this module, not a submodule with parameters of its own.
        self._kernel = (kernel,)
        self._state = None   # remembered (h, c) or (h,), each (N, H), detached
        self.reset_parameters()

    def reset_parameters(self, generator=None, std=None):
        """torch-rnn's ``reset``: weight ~ N(0, std), std = 1/sqrt(D+H) by default; bias 0.

        With a :class:`TorchGenerator` the weights are drawn exactly as Torch7 draws them
        (row-major, in double, then stored as this module's dtype).
        """
        D, H = self.input_dim, self.hidden_dim
        if std is None:
            std = 1.0 / (D + H) ** 0.5
        with torch.no_grad():
            if generator is None:
                self.weight.normal_(0.0, std)
            else:
                values = generator.normal(self.weight.numel(), 0.0, std)
                self.weight.copy_(torch.from_numpy(values).view_as(self.weight))
            self.bias.zero_()

    def _apply(self, fn, recurse=True):
        """``.to()``, ``.cuda()``, ``.double()``...: the remembered state moves with the
        parameters, so the next pass finds it on their device and in their type."""
        ret = super()._apply(fn, recurse)
        if self._state is not None:
            with torch.no_grad():
                self._state = tuple(fn(t) for t in self._state)
        return ret

    def reset_states(self):
        """Forget the remembered state: the next pass starts from zeros (``resetStates``)."""
        self._state = None

    @property
    def state(self):
        """The remembered state, a tuple of ``(N, H)`` tensors, or None."""
        return self._state

    @state.setter
    def state(self, value):
        self._state = None if value is None else tuple(t.detach() for t in value)

    def _initial_state(self, N, h0, c0, like):
        """The (h0[, c0]) this pass starts from, each (N, H)."""
        H = self.hidden_dim
        given = (h0, c0) if self.has_cell else (h0,)
        remembered = self._state if self.remember_states else None
        if remembered is not None and remembered[0].shape[0] != N:
            raise ValueError(f"batch size changed from {remembered[0].shape[0]} to {N} while "
                             f"remembering states: call reset_states() first")
        start = []
        for k, value in enumerate(given):
            if value is None:
                value = (remembered[k] if remembered is not None
                         else like.new_zeros(N, H))
            start.append(value)
        return start

    def forward(self, x, h0=None, c0=None):
        """x (N, T, D) -> hidden states (N, T, H); starts from h0/c0, the remembered
        state (``remember_states``) or zeros, and remembers where it ended."""
        N, T, D = x.shape
        if D != self.input_dim:
            raise ValueError(f"expected input of size {self.input_dim}, got {D}")
        start = self._initial_state(N, h0, c0, x)
        out, last = self._run(x, start)
        self._state = tuple(s.detach() for s in last)             # each (N, H)
        return out                                                # (N, T, H)

    def _run(self, x, start):
        """x (N, T, D) from ``start`` (h0[, c0]) -> (out (N, T, H), final (h[, c]) each
        (N, H)), by PyTorch's fused kernel."""
        params = torchrnn_to_torch_layout(self.weight, self.bias, self.input_dim,
                                          self._gate_order(x))
        kernel = self._kernel[0]
        # The kernel's eval mode keeps nothing for a backward (cuDNN then refuses one): it
        # runs in training mode whenever a gradient may be asked for; its dropout is 0.
        kernel.train(self.training or torch.is_grad_enabled())
        hx = tuple(s.unsqueeze(0).contiguous() for s in start)   # each (1, N, H)
        out, last = functional_call(kernel, params, (x, hx if self.has_cell else hx[0]))
        last = last if self.has_cell else (last,)
        return out, tuple(s[0] for s in last)

    def _gate_order(self, like):
        return None

    def extra_repr(self):
        return f"{self.input_dim}, {self.hidden_dim}"


class _NoFlatten:
    """Mixin for the kernels: PyTorch "flattens" an RNN's weights into one cuDNN buffer by
    repointing the weight tensors in place, which is meant for a module's own parameters.
    Ours are new per-call tensors on an autograd path, already views of one flat buffer in
    cuDNN's layout (:func:`torchrnn_to_torch_layout`), so there is nothing to flatten."""

    def flatten_parameters(self):
        pass


class _LSTMKernel(_NoFlatten, nn.LSTM):
    pass


class _RNNKernel(_NoFlatten, nn.RNN):
    pass


class LSTM(_Recurrent):
    """torch-rnn's ``nn.LSTM(D, H)``: gates i, f, o, g in ``weight (D+H, 4H)``.

    ``i, f, o = sigmoid``, ``g = tanh`` of ``x Wx + h Wh + b``; ``c = f c_prev + i g``;
    ``h = o tanh(c)``. The forget-gate bias starts at 1, as in torch-rnn.
    """

    gates = 4
    has_cell = True

    def __init__(self, input_dim, hidden_dim):
        super().__init__(input_dim, hidden_dim,
                         _LSTMKernel(input_dim, hidden_dim, batch_first=True, device="meta"))

    def reset_parameters(self, generator=None, std=None):
        super().reset_parameters(generator, std)
        H = self.hidden_dim
        with torch.no_grad():
            self.bias[H:2 * H].fill_(1.0)

    def _gate_order(self, like):
        H = self.hidden_dim
        cached = getattr(self, "_perm", None)
        if cached is None or cached.device != like.device:
            self._perm = lstm_gate_permutation(H, like.device)
        return self._perm


class VanillaRNN(_Recurrent):
    """torch-rnn's ``nn.VanillaRNN(D, H)``: ``h = tanh(x Wx + h Wh + b)``."""

    def __init__(self, input_dim, hidden_dim):
        super().__init__(input_dim, hidden_dim,
                         _RNNKernel(input_dim, hidden_dim, nonlinearity="tanh",
                                    batch_first=True, device="meta"))


class GRU(_Recurrent):
    """char-rnn's GRU as a torch-rnn layer (``nn.GRU(D, H)`` of torch-rnn's forks with a
    GRU.lua): ``weight (D+H, 3H)`` with column blocks z (update), r (reset), c (candidate).

    ``z = sigmoid(x Wx_z + h Wh_z + b_z)``, ``r = sigmoid(x Wx_r + h Wh_r + b_r)``,
    ``c = tanh(x Wx_c + (r h) Wh_c + b_c)``, ``h' = z c + (1 - z) h``: the reset gate acts on
    h before its product, and z weighs the candidate, so this is not ``torch.nn.GRU``'s
    function. Computed by :class:`_GRUFunction`; under CUDA autocast it runs in float32.
    """

    gates = 3

    def reset_parameters(self, generator=None, std=None):
        """GRU.lua's ``reset``: bias ~ N(0, std) drawn first, then weight ~ N(0, std),
        std = 1/sqrt(D+H) by default (drawn as Torch7 draws them with a TorchGenerator)."""
        D, H = self.input_dim, self.hidden_dim
        if std is None:
            std = 1.0 / (D + H) ** 0.5
        with torch.no_grad():
            for param in (self.bias, self.weight):
                if generator is None:
                    param.normal_(0.0, std)
                else:
                    values = generator.normal(param.numel(), 0.0, std)
                    param.copy_(torch.from_numpy(values).view_as(param))

    def _run(self, x, start):
        h0 = start[0]                                                # (N, H)
        out = _GRUFunction.apply(x, h0, self.weight, self.bias)     # (N, T, H)
        with torch.no_grad():        # a copy: the state must not keep all of out alive
            last = out[:, -1].clone() if out.shape[1] > 0 else h0
        return out, (last,)


class _GRUFunction(torch.autograd.Function):
    """:class:`GRU` over all T steps with a hand-written backward (as torch-rnn's LSTM):
    ``x Wx + b`` for every step is one product; each step then does a few in-place ops,
    and the backward walks back over T computing only what flows through h, leaving the
    weight gradients to three products over all T at the end."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)
    def forward(ctx, x, h0, weight, bias):
        """x (N, T, D), h0 (N, H), weight (D+H, 3H), bias (3H,) -> h (N, T, H)."""
        N, T, D = x.shape
        H = h0.shape[1]
        Wh_zr, Wh_c = weight[D:, :2 * H], weight[D:, 2 * H:]        # (H, 2H), (H, H)
        gates = torch.addmm(bias, x.reshape(N * T, D), weight[:D]).view(N, T, 3 * H)
        out = x.new_empty(N, T, H)
        rh = x.new_empty(N, T, H)                                    # r * h_prev, each step
        prev = h0
        steps = zip(gates[..., :2 * H].unbind(1), gates[..., 2 * H:].unbind(1),
                    rh.unbind(1), out.unbind(1))
        for zr, c, rh_t, h in steps:                                 # each (N, 2H|H)
            zr.addmm_(prev, Wh_zr).sigmoid_()                        # z | r
            torch.mul(zr[:, H:], prev, out=rh_t)
            c.addmm_(rh_t, Wh_c).tanh_()                             # candidate
            z = zr[:, :H]
            torch.addcmul(prev, z, prev, value=-1, out=h)            # (1 - z) h_prev
            h.addcmul_(z, c)                                         # + z c
            prev = h
        ctx.save_for_backward(x, h0, weight, gates, rh, out)
        return out

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    @once_differentiable
    def backward(ctx, grad_out):
        """grad_out (N, T, H) -> gradients of x, h0, weight, bias."""
        x, h0, weight, gates, rh, out = ctx.saved_tensors
        N, T, D = x.shape
        H = h0.shape[1]
        z, r, c = gates[..., :H], gates[..., H:2 * H], gates[..., 2 * H:]   # (N, T, H)
        prev = torch.cat([h0.unsqueeze(1), out], 1)[:, :T]           # h_{t-1}, (N, T, H)
        # what multiplies the gradient of h_t to give those of the pre-activations
        keep = 1 - z                                                 # h_prev directly
        to_c = z * (1 - c * c)
        to_z = (c - prev) * z * keep
        to_r = prev * r * (1 - r)                                    # from d(r * h_prev)
        grad_a = gates.new_empty(N, T, 3 * H)                        # pre-activations
        grad_h = h0.new_empty(N, H)
        grad_rh = h0.new_empty(N, H)
        grad_prev = h0.new_zeros(N, H)
        Wh_zr_t, Wh_c_t = weight[D:, :2 * H].t(), weight[D:, 2 * H:].t()
        for t in range(T - 1, -1, -1):
            ga = grad_a[:, t]                                        # (N, 3H)
            torch.add(grad_out[:, t], grad_prev, out=grad_h)
            torch.mul(grad_h, to_c[:, t], out=ga[:, 2 * H:])
            torch.mul(grad_h, to_z[:, t], out=ga[:, :H])
            torch.mm(ga[:, 2 * H:], Wh_c_t, out=grad_rh)
            torch.mul(grad_rh, to_r[:, t], out=ga[:, H:2 * H])
            torch.mul(grad_h, keep[:, t], out=grad_prev)
            grad_prev.addcmul_(grad_rh, r[:, t])
            grad_prev.addmm_(ga[:, :2 * H], Wh_zr_t)
        flat = grad_a.view(N * T, 3 * H)
        grad_x = (flat @ weight[:D].t()).view(N, T, D) if ctx.needs_input_grad[0] else None
        grad_w = torch.empty_like(weight)
        torch.mm(x.reshape(N * T, D).t(), flat, out=grad_w[:D])
        torch.mm(prev.reshape(N * T, H).t(), flat[:, :2 * H], out=grad_w[D:, :2 * H])
        torch.mm(rh.reshape(N * T, H).t(), flat[:, 2 * H:], out=grad_w[D:, 2 * H:])
        return grad_x, grad_prev, grad_w, flat.sum(0)


def _mask_to_device(keep, x):
    """The bool array ``keep`` as a bool tensor on x's device: one byte per element crosses
    to a GPU (not four), from pinned memory, without waiting for the copy."""
    return host_to_device(torch.from_numpy(keep), x.device)


@functools.lru_cache(maxsize=None)         # called per layer, per step: computed once
def inverse_keep(p, dtype):
    """``1 / (1 - p)`` as Torch7's dropout computes it: both rounded to ``dtype``."""
    one = torch.ones((), dtype=dtype)
    return (one / torch.tensor(1.0 - p, dtype=dtype)).item()


class Dropout(nn.Module):
    """torch-rnn's ``nn.Dropout(p)``: inverted dropout ("v2") after every recurrent layer.

    ``generator``: a :class:`~torchrnn_py.rng.TorchGenerator`; when set, each training
    pass draws one uniform per element in row-major order and keeps the element when
    ``u <= 1 - p``, as Torch7 does, so seeded runs match the original. A
    ``torch.Generator`` (or None: PyTorch's default one) uses PyTorch's own, faster,
    on-device dropout. ``rows = (start, stop, N)``: the input holds rows start..stop of an
    N-row batch (one process's share); Torch7 masks are then drawn for all N rows and this
    share taken, so the masks do not depend on how many processes share the batch. ``v2=False`` reproduces old
    checkpoints' "v1" dropout: no scaling in training, outputs times ``1 - p`` in evaluation.
    ``mask``: when set, a tensor shaped as the input holding the scaled noise that the next
    training passes multiply by (no draw; char-rnn's per-step masks, torchrnn_py/charrnn/fast.py).
    """

    def __init__(self, p, v2=True):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
        self.p = float(p)
        self.v2 = bool(v2)
        self.generator = None
        self.rows = None
        self.mask = None

    def forward(self, x):
        p = self.p
        if p == 0:
            return x
        if not self.training:
            return x if self.v2 else x * (1.0 - p)
        if self.mask is not None:
            if self.mask.shape != x.shape:
                raise ValueError(f"dropout mask of shape {tuple(self.mask.shape)} for an "
                                 f"input of shape {tuple(x.shape)}")
            return x * self.mask
        if not isinstance(self.generator, TorchGenerator):
            if self.v2 and self.generator is None:
                return F.dropout(x, p, training=True)
            noise = torch.empty_like(x).bernoulli_(1.0 - p, generator=self.generator)
            return x * (noise / (1.0 - p) if self.v2 else noise)
        if self.rows is None:
            keep = self.generator.bernoulli(x.numel(), 1.0 - p)
        else:
            start, stop, total = self.rows
            per_row = x.numel() // (stop - start)
            keep = self.generator.bernoulli(total * per_row, 1.0 - p)[start * per_row:stop * per_row]
        noise = _mask_to_device(keep, x).view_as(x).to(x.dtype)      # 0/1, shaped as x
        if self.v2:
            # Torch7 divides the 0/1 noise by (1 - p) in the tensor's type, then multiplies:
            # 1 / (1 - p) rounded to x's type, times 0 or 1, is the same noise, computed here
            # in place and without a scalar tensor on the device (a host sync on CUDA).
            noise.mul_(inverse_keep(p, x.dtype))
        return x * noise

    def extra_repr(self):
        return f"p={self.p}" + ("" if self.v2 else ", v1")
