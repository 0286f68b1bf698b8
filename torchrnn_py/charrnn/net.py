"""char-rnn's model as its train.lua trains it: one flat float64 parameter vector holding every
``nn.Linear``'s weight and bias separately, in the gModule's ``modules`` order, and one time
step computed with torch ops (autograd), unrolled over ``seq_length``.

Layout (tests/fixtures/charrnn/README.md, "Where the Linears sit"), per layer l, ``in`` = V
for layer 1 and H above, G = 4H for the LSTM and H otherwise:

- lstm: ``i2h`` (4H, in), ``h2h`` (4H, H); gates i, f, o, g in row blocks;
- gru: ``i2h_z``, ``h2h_z``, ``i2h_c`` (x -> candidate), ``i2h_r``, ``h2h_r``, ``h2h_c``
  ((r * h) -> candidate);
- rnn: ``i2h``, ``h2h``;

then the decoder (V, H). Each Linear is ``W`` (out, in) then ``b`` (out,), as
model_utils.combine_all_parameters flattens them. States are in char-rnn's order:
``c_1, h_1, ..., c_L, h_L`` (lstm) or ``h_1, ..., h_L``.

One behaviour of the original is kept on purpose: train.lua carries the state into the next
minibatch as the very tensors the last clone outputs, so when the next minibatch's forward
pass has overwritten them, the backward pass of its first step reads this minibatch's final
state where the previous state was used. The weight gradient of the Linears that read the
previous h, and the gradient of the gates multiplied with the previous c or h (LSTM f, GRU r
and 1 - z), are taken with those values (:class:`_StaleMatmul`, :class:`_StaleMul`).
"""
import contextlib
import dataclasses
import math

import torch

from ..ids import to_index

#: Per model type: the Linears of one layer in modules order, (role, gate blocks, reads).
LAYER_LINEARS = {
    "lstm": (("i2h", 4, "x"), ("h2h", 4, "h")),
    "gru": (("i2h_z", 1, "x"), ("h2h_z", 1, "h"), ("i2h_c", 1, "x"), ("i2h_r", 1, "x"),
            ("h2h_r", 1, "h"), ("h2h_c", 1, "h")),
    "rnn": (("i2h", 1, "x"), ("h2h", 1, "h")),
}
STATES_PER_LAYER = {"lstm": 2, "gru": 1, "rnn": 1}
INIT_RANGE = 0.08                    # train.lua's params:uniform(-0.08, 0.08)
SMALL_PRODUCT = 1 << 22              # multiply-adds per gate product below which 1 thread


def gate_pairs(model_type):
    """The (x Linear, h Linear) roles whose biases add up in one column block of torch-rnn's
    layer (the LSTM's 4H, the RNN's H; the GRU's z, r, c blocks in that order)."""
    if model_type == "gru":
        return [(f"i2h_{g}", f"h2h_{g}") for g in ("z", "r", "c")]
    return [("i2h", "h2h")]


@dataclasses.dataclass(frozen=True)
class LinearSlot:
    """Where one Linear lives in the flat vector: name, layer (0-based; None: decoder),
    role, shape (out, in) and the offset of its weight (its bias follows)."""
    name: str
    layer: object
    role: str
    out: int
    inp: int
    offset: int

    @property
    def size(self):
        return self.out * self.inp + self.out


class CharRNNNet:
    """char-rnn's lstm/gru/rnn of ``num_layers`` x ``rnn_size`` over ``vocab_size`` bytes;
    ``params`` (nparams,) float64 holds every Linear (see the module docstring)."""

    def __init__(self, model_type, vocab_size, rnn_size, num_layers, dropout=0.0):
        self.model_type, self.vocab_size = model_type, int(vocab_size)
        self.rnn_size, self.num_layers = int(rnn_size), int(num_layers)
        self.dropout = float(dropout)
        self.slots = _slots(model_type, self.vocab_size, self.rnn_size, self.num_layers)
        self.nparams = sum(slot.size for slot in self.slots)
        self.params = torch.zeros(self.nparams, dtype=torch.float64)
        self._eye = torch.eye(self.vocab_size, dtype=torch.float64)

    @property
    def num_states(self):
        return STATES_PER_LAYER[self.model_type] * self.num_layers

    @property
    def num_dropouts(self):
        """nn.Dropout modules per step: one on each layer's input above the first, one
        on the top h (none without dropout)."""
        return self.num_layers if self.dropout > 0 else 0

    def linears(self, flat=None):
        """``[(W (out, in), b (out,))]`` views of ``flat`` (default ``params``), in modules
        order."""
        flat = self.params if flat is None else flat
        out = []
        for s in self.slots:
            w_end = s.offset + s.out * s.inp
            out.append((flat[s.offset:w_end].view(s.out, s.inp), flat[w_end:w_end + s.out]))
        return out

    def set_linears(self, linears):
        """Copy ``[(W, b)]`` (modules order, shapes as :meth:`linears`) into ``params``."""
        with torch.no_grad():
            for (w, b), (W, B) in zip(self.linears(), linears):
                w.copy_(W)
                b.copy_(B)

    def init_random(self, generator):
        """train.lua's initialisation, from a freshly seeded TorchGenerator: the Linear
        constructors' reset() draws (nparams of them, overwritten next), then
        ``params:uniform(-0.08, 0.08)``."""
        generator.uniform(self.nparams)
        values = generator.uniform(self.nparams, -INIT_RANGE, INIT_RANGE)
        self.params.copy_(torch.from_numpy(values))

    def forget_bias_to_one(self):
        """LSTM: set the forget-gate block of each layer's i2h bias to 1 (train.lua does it
        after initialising or loading); returns the layers (1-based) it set."""
        H = self.rnn_size
        for slot, (_, b) in zip(self.slots, self.linears()):
            if slot.role == "i2h":
                b[H:2 * H] = 1.0
        return list(range(1, self.num_layers + 1))

    @contextlib.contextmanager
    def threads(self, batch_size):
        """One intra-op thread while the products are small (the fixtures' 20 x 256 x 64
        take ~1 ms: more threads only wait on each other, badly so on a busy machine);
        larger models keep torch's setting. Results do not depend on it."""
        small = batch_size * self.rnn_size * self.rnn_size * 4 < SMALL_PRODUCT
        previous = torch.get_num_threads()
        if small:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            if small:
                torch.set_num_threads(previous)

    def language_model(self, vocab_bytes):
        """The same weights as a float64 :class:`~torchrnn_py.model.LanguageModel` in
        evaluation mode (one-hot embedding, the two biases of each gate summed, GRU blocks
        z|r|c), as torchrnn_py/charrnn/checkpoint.py builds one from a file."""
        from ..model import LanguageModel
        from ..vocab import Vocab, byte_token
        V, H = self.vocab_size, self.rnn_size
        vocab = Vocab([byte_token(b[0]) for b in vocab_bytes])
        model = LanguageModel(vocab, self.model_type, V, H, self.num_layers, self.dropout,
                              init=False).double()
        layers, (W_dec, b_dec) = self.layer_views(self.linears())
        gates = gate_pairs(self.model_type)
        with torch.no_grad():
            model.embedding.weight.copy_(torch.eye(V, dtype=torch.float64))
            for lin, rnn in zip(layers, model.rnns):
                rnn.weight.copy_(torch.cat([torch.cat([lin[x][0].t(), lin[h][0].t()], 0)
                                            for x, h in gates], 1))        # (D+H, G)
                rnn.bias.copy_(torch.cat([lin[x][1] + lin[h][1] for x, h in gates]))
            model.linear.weight.copy_(W_dec)
            model.linear.bias.copy_(b_dec)
        return model.eval()

    def zero_state(self, batch_size):
        return [torch.zeros(batch_size, self.rnn_size, dtype=torch.float64)
                for _ in range(self.num_states)]

    def layer_views(self, views):
        """The views of :meth:`linears` grouped: ``([{role: (W, b)}] per layer, decoder)``."""
        layers = [dict() for _ in range(self.num_layers)]
        for slot, wb in zip(self.slots, views):
            if slot.layer is not None:
                layers[slot.layer][slot.role] = wb
        return layers, views[-1]

    def step(self, ids, state, views, masks=None, stale=None):
        """One time step: ``(next_state, logprobs (B, V))`` for 0-based ids (B,) and
        ``state`` in char-rnn's order; ``masks`` the dropout noise of this step (a
        sequence of (B, H), :attr:`num_dropouts` long), ``stale`` the values the backward
        pass reads in place of ``state`` (module docstring)."""
        layers, (W_dec, b_dec) = self.layer_views(views)
        S = STATES_PER_LAYER[self.model_type]
        cell = _CELLS[self.model_type]
        x = self._eye[ids]                                      # (B, V) one-hot
        next_state = []
        for layer, lin in enumerate(layers):
            if layer > 0:
                x = next_state[-1]
                if masks is not None:
                    x = x * masks[layer - 1]
            prev = state[S * layer:S * layer + S]
            old = stale[S * layer:S * layer + S] if stale is not None else prev
            next_state += cell(x, prev, old, lin)
        top = next_state[-1]
        if masks is not None:
            top = top * masks[-1]
        scores = _linear(top, W_dec, b_dec)                     # (B, V)
        return next_state, torch.log_softmax(scores, dim=1)


def _slots(model_type, V, H, L):
    slots, offset = [], 0
    for layer in range(L):
        inp = V if layer == 0 else H
        for role, blocks, reads in LAYER_LINEARS[model_type]:
            slot = LinearSlot(f"{role}_{layer + 1}", layer, role, blocks * H,
                              inp if reads == "x" else H, offset)
            slots.append(slot)
            offset += slot.size
    slots.append(LinearSlot("decoder", None, "decoder", V, H, offset))
    return slots


# -- the cells, as char-rnn's model/*.lua compute them ------------------------------------

def _linear(x, W, b):
    """nn.Linear in batch mode: ``x W^T`` then ``+ b``."""
    return x @ W.t() + b


def _linear_prev(h, old, W, b):
    """nn.Linear on a previous state: its weight gradient reads ``old``."""
    if old is h:
        return _linear(h, W, b)
    return _StaleMatmul.apply(h, old, W) + b


def _mul_prev(gate, s, old):
    """``gate * s`` for a previous state ``s``: the gate's gradient reads ``old``."""
    if old is s:
        return gate * s
    return _StaleMul.apply(gate, s, old)


class _Sigmoid(torch.autograd.Function):
    """Torch7's sigmoid, ``1 / (1 + exp(-x))``, and nn.Sigmoid's gradient
    ``g * (1 - s) * s``, in those operation orders (torch.sigmoid rounds differently)."""

    @staticmethod
    def forward(ctx, x):
        s = 1.0 / (1.0 + torch.exp(-x))
        ctx.save_for_backward(s)
        return s

    @staticmethod
    def backward(ctx, grad):
        (s,) = ctx.saved_tensors
        return grad * (1.0 - s) * s


class _Tanh(torch.autograd.Function):
    """tanh with nn.Tanh's gradient ``g * (1 - z * z)``."""

    @staticmethod
    def forward(ctx, x):
        z = torch.tanh(x)
        ctx.save_for_backward(z)
        return z

    @staticmethod
    def backward(ctx, grad):
        (z,) = ctx.saved_tensors
        return grad * (1.0 - z * z)


_sigmoid, _tanh = _Sigmoid.apply, _Tanh.apply


def _lstm_cell(x, prev, old, lin):
    (c, h), (c_old, h_old) = prev, old
    H = h.shape[1]
    a = _linear(x, *lin["i2h"]) + _linear_prev(h, h_old, *lin["h2h"])     # (B, 4H)
    i, f, o = (_sigmoid(a[:, k * H:(k + 1) * H]) for k in range(3))
    g = _tanh(a[:, 3 * H:])
    next_c = _mul_prev(f, c, c_old) + i * g
    return [next_c, o * _tanh(next_c)]


def _gru_cell(x, prev, old, lin):
    (h,), (h_old,) = prev, old
    z = _sigmoid(_linear(x, *lin["i2h_z"]) + _linear_prev(h, h_old, *lin["h2h_z"]))
    r = _sigmoid(_linear(x, *lin["i2h_r"]) + _linear_prev(h, h_old, *lin["h2h_r"]))
    gated = _mul_prev(r, h, h_old)
    candidate = _tanh(_linear(x, *lin["i2h_c"]) + _linear(gated, *lin["h2h_c"]))
    return [z * candidate + _mul_prev((-z) + 1, h, h_old)]


def _rnn_cell(x, prev, old, lin):
    (h,), (h_old,) = prev, old
    return [_tanh(_linear(x, *lin["i2h"]) + _linear_prev(h, h_old, *lin["h2h"]))]


_CELLS = {"lstm": _lstm_cell, "gru": _gru_cell, "rnn": _rnn_cell}


class _StaleMatmul(torch.autograd.Function):
    """``h W^T`` whose weight gradient is ``g^T old`` (``old`` is read when the backward
    runs, so it may be filled after the forward pass, as train.lua's buffers are)."""

    @staticmethod
    def forward(ctx, h, old, W):
        ctx.old, ctx.W = old, W.detach()
        return h @ W.t()

    @staticmethod
    def backward(ctx, grad):                                    # grad (B, out)
        grad_h = grad @ ctx.W if ctx.needs_input_grad[0] else None
        return grad_h, None, grad.t() @ ctx.old


class _StaleMul(torch.autograd.Function):
    """``gate * s`` whose gate gradient is ``g * old`` (``old`` read at backward time)."""

    @staticmethod
    def forward(ctx, gate, s, old):
        ctx.old, ctx.gate = old, gate.detach()
        return gate * s

    @staticmethod
    def backward(ctx, grad):
        grad_s = grad * ctx.gate if ctx.needs_input_grad[1] else None
        return grad * ctx.old, grad_s, None


# -- one minibatch: forward, backward; and evaluation ---------------------------------------

def forward_backward(net, x, y, state, masks=None, stale=False):
    """train.lua's feval without the clipping: ``(loss, grad (nparams,), final_state)``.
    x, y (B, T) int64 1-based ids; ``state`` the carried state; ``masks`` (T, num_dropouts, B, H) or
    None; ``stale``: whether ``state`` aliases the last step's outputs (every minibatch but
    the first), see the module docstring. loss = mean over steps of the batch-mean NLL;
    the gradient is that of the sum over steps (train.lua does not divide it)."""
    x, y = to_index(x), to_index(y)                             # 0-based ids
    flat = net.params.detach().requires_grad_()
    views = net.linears(flat)
    T = x.shape[1]
    B = x.shape[0]
    old = [torch.empty_like(s) for s in state] if stale else None
    total = None
    for t in range(T):
        state, logprobs = net.step(x[:, t], state, views,
                                   None if masks is None else masks[t],
                                   old if t == 0 else None)
        nll = -logprobs.gather(1, y[:, t:t + 1]).sum() / B
        total = nll if total is None else total + nll
    final = [s.detach() for s in state]
    if old is not None:
        for buffer, value in zip(old, final):
            buffer.copy_(value)
    total.backward()
    return total.item() / T, flat.grad, final


def evaluate_batches(net, batches, batch_size, on_batch=None):
    """The eval_split loop over ``batches`` [(x, y)]: ``(loss, final_state)``, from a zero
    state carried across batches, without dropout; ``on_batch(k)`` after batch k (1-based).
    ``loss`` = sum of every step's batch-mean NLL / seq_length / number of batches."""
    state = net.zero_state(batch_size)
    views = net.linears()
    loss, T = 0.0, None
    with torch.no_grad():
        for k, (x, y) in enumerate(batches, start=1):
            x, y, T = to_index(x), to_index(y), x.shape[1]      # 0-based ids
            for t in range(T):
                state, logprobs = net.step(x[:, t], state, views)
                loss += float(-logprobs.gather(1, y[:, t:t + 1]).sum() / x.shape[0])
            if on_batch is not None:
                on_batch(k)
    return (loss / T / len(batches) if batches else math.nan), state


def dropout_bits(generator, net, batch_size, seq_length):
    """The keep/drop draws of every nn.Dropout clone of one minibatch, in the order train.lua's
    forward pass draws them: step by step, Dropout by Dropout, each ``bernoulli(1 - p)`` over
    (B, H) in row-major order. (T, num_dropouts, B, H) bool, or None without dropout."""
    D = net.num_dropouts
    if D == 0:
        return None
    n = seq_length * D * batch_size * net.rnn_size
    bits = torch.from_numpy(generator.bernoulli(n, 1 - net.dropout))
    return bits.view(seq_length, D, batch_size, net.rnn_size)


def dropout_masks(generator, net, batch_size, seq_length):
    """The noise of every nn.Dropout clone of one minibatch (:func:`dropout_bits`) divided
    by 1 - p, as nn.Dropout scales it: (T, num_dropouts, B, H) float64, or None."""
    bits = dropout_bits(generator, net, batch_size, seq_length)
    if bits is None:
        return None
    return bits.to(torch.float64).div_(1 - net.dropout)
