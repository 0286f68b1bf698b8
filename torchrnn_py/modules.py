"""torch-rnn's recurrent layers as PyTorch modules, computed by PyTorch's fused kernels.

``LSTM`` and ``VanillaRNN`` keep torch-rnn's public parameters: ``weight`` of shape
``(D + H, G)`` (the first D rows multiply the input, the last H rows the previous hidden
state; G = 4H gate columns in the order i, f, o, g for the LSTM, G = H for the RNN) and
``bias`` of shape ``(G,)``. Each forward pass hands them to ``torch.nn.LSTM`` /
``torch.nn.RNN`` (cuDNN on a GPU, the fused CPU kernel otherwise) through
:func:`torchrnn_to_torch_layout`, the one place where the layouts are converted.

``Dropout`` is torch-rnn's ``nn.Dropout`` (inverted, "v2"; "v1" for very old checkpoints)
that can take its masks from a :class:`~torchrnn_py.rng.TorchGenerator`, so that seeded
runs drop exactly the units the original drops.
"""
import functools

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

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
    """What torch-rnn's LSTM and VanillaRNN share: parameters, remembered states, kernel."""

    gates = 1        # G / H
    has_cell = False

    def __init__(self, input_dim, hidden_dim, kernel):
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
        params = torchrnn_to_torch_layout(self.weight, self.bias, D, self._gate_order(x))
        kernel = self._kernel[0]
        # The kernel's eval mode keeps nothing for a backward (cuDNN then refuses one): it
        # runs in training mode whenever a gradient may be asked for; its dropout is 0.
        kernel.train(self.training or torch.is_grad_enabled())
        hx = tuple(s.unsqueeze(0).contiguous() for s in start)   # each (1, N, H)
        out, last = functional_call(kernel, params, (x, hx if self.has_cell else hx[0]))
        last = last if self.has_cell else (last,)
        self._state = tuple(s[0].detach() for s in last)          # each (N, H)
        return out                                                # (N, T, H)

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


def _mask_to_device(keep, x):
    """The bool array ``keep`` as a bool tensor on x's device: one byte per element crosses
    to a GPU (not four), from pinned memory, without waiting for the copy."""
    mask = torch.from_numpy(keep)
    if x.device.type == "cuda":
        return mask.pin_memory().to(x.device, non_blocking=True)
    return mask.to(x.device)


@functools.lru_cache(maxsize=None)         # called per layer, per step: computed once
def _inverse_keep(p, dtype):
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
    """

    def __init__(self, p, v2=True):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
        self.p = float(p)
        self.v2 = bool(v2)
        self.generator = None
        self.rows = None

    def forward(self, x):
        p = self.p
        if p == 0:
            return x
        if not self.training:
            return x if self.v2 else x * (1.0 - p)
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
            noise.mul_(_inverse_keep(p, x.dtype))
        return x * noise

    def extra_repr(self):
        return f"p={self.p}" + ("" if self.v2 else ", v1")
