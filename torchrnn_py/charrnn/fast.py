"""char-rnn's training step on torch-rnn's fused layers: the fast path of
``torchrnn-charrnn-train`` (``-gpuid N`` with CUDA, or ``-fast 1`` on the CPU).

The model is :meth:`CharRNNNet.language_model`'s :class:`~torchrnn_py.model.LanguageModel`
(an identity embedding, LSTM/RNN on PyTorch's fused kernels -- cuDNN on a GPU -- and the GRU's
own autograd Function), whose bias per gate block is the sum ``s = b_i2h + b_h2h`` of
char-rnn's two. The maths is char-rnn's (docs/compatibility.md, "char-rnn: train.lua"):

- both biases of a pair always get the same gradient ``g = dL/ds`` and the same RMSprop
  ``m``, so each moves by the same step: ``s`` moves by twice RMSprop's step for ``g``;
- their difference ``d = b_i2h - b_h2h`` never changes: it is kept (float64) from the
  initial or ``-init_from`` weights, so ``b_i2h = (s + d) / 2``, ``b_h2h = (s - d) / 2`` are
  what the checkpoints hold and what the printed ``grad/param norm`` counts (both biases in
  ``||params||``, their gradient twice in ``||grad||``);
- the gradient is that of the sum over steps of the batch-mean NLL, clamped element-wise;
- each Dropout's mask is drawn ahead for the whole minibatch, from the same Torch7
  generator and in the order char-rnn's clones draw it (:func:`.net.dropout_bits`);
- the state is carried across minibatches, and after a validation from its last batch.

One difference: train.lua's first step of each minibatch backpropagates through state
tensors that its forward pass already overwrote (torchrnn_py/charrnn/net.py); fused kernels
cannot, so here that step's gradient is the correct one.
"""
import contextlib

import torch
import torch.nn.functional as F

from ..device import apply_cuda_precision
from ..ids import to_index
from ..modules import inverse_keep
from .net import STATES_PER_LAYER, dropout_bits, gate_pairs

RMSPROP_EPSILON = 1e-8               # optim.rmsprop's default, which train.lua keeps


class FastTrainer:
    """char-rnn's optimisation of ``net`` (a :class:`~.net.CharRNNNet`, already initialised)
    on a fused LanguageModel in ``dtype`` on ``device``; ``generator`` draws the dropout
    masks; ``opt`` holds train.lua's options (batch_size, seq_length, grad_clip,
    decay_rate, accurate_gpu_timing)."""

    def __init__(self, net, vocab_bytes, generator, opt, device, dtype=torch.float32):
        self.net, self.gen, self.opt = net, generator, opt
        self.device, self.dtype = torch.device(device), dtype
        if self.device.type == "cuda":
            apply_cuda_precision("fp32")              # IEEE float32, as cutorch computes
        self.B, self.T = opt["batch_size"], opt["seq_length"]
        self.model = net.language_model(vocab_bytes).to(device=self.device, dtype=dtype)
        self.model.embedding.weight.requires_grad_(False)      # char-rnn's OneHot
        self.model.train()
        self.params, self.twice = [], []               # twice: a summed pair of biases
        for rnn in self.model.rnns:
            self.params += [rnn.weight, rnn.bias]
            self.twice += [False, True]
        self.params += [self.model.linear.weight, self.model.linear.bias]
        self.twice += [False, False]
        self.bias_diffs = _bias_differences(net)        # per layer (G,) float64, CPU
        self.m = [torch.zeros_like(p) for p in self.params]   # rmsprop's state.m
        self.grads = [torch.zeros_like(p) for p in self.params]
        self._inverse_keep = inverse_keep(net.dropout, dtype) if net.num_dropouts else None

    def threads(self):
        """torch's own thread setting: the fused kernels gain from every thread even where
        the faithful trainer's small per-step products do not (net.py's ``threads``)."""
        return contextlib.nullcontext()

    def step(self, x, y, learning_rate):
        """One optim.rmsprop call on train.lua's feval for the minibatch x, y (B, T) of
        1-based ids: returns the loss (mean over steps of the batch-mean NLL)."""
        self._set_masks()
        x, y = x.to(self.device), y.to(self.device)
        for p in self.params:
            p.grad = None
        scores = self.model(x)                                       # (B, T, V)
        V = scores.shape[-1]
        total = F.cross_entropy(scores.reshape(-1, V), to_index(y).reshape(-1),
                                reduction="sum") / x.shape[0]        # sum over steps
        total.backward()
        clip, alpha = self.opt["grad_clip"], self.opt["decay_rate"]
        with torch.no_grad():
            for k, p in enumerate(self.params):
                g = p.grad.clamp_(-clip, clip)
                self.grads[k] = g
                self.m[k].mul_(alpha).addcmul_(g, g, value=1.0 - alpha)
                denominator = self.m[k].sqrt().add_(RMSPROP_EPSILON)
                p.addcdiv_(g, denominator, value=-learning_rate * (2 if self.twice[k] else 1))
        loss = total.item() / self.T
        if self.opt["accurate_gpu_timing"] == 1 and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return loss

    def _set_masks(self):
        """Each Dropout's (B, T, H) mask for this minibatch, drawn as char-rnn draws them."""
        bits = dropout_bits(self.gen, self.net, self.B, self.T)     # (T, L, B, H) bool
        if bits is None:
            return
        bits = bits.to(self.device, non_blocking=True)
        for layer, dropout in enumerate(self.model.dropouts):
            mask = bits[:, layer].transpose(0, 1).to(                # (B, T, H)
                self.dtype, memory_format=torch.contiguous_format)
            dropout.mask = mask.mul_(self._inverse_keep)

    def norm(self):
        """train.lua's ``grad_params:norm() / params:norm()`` over char-rnn's separate
        Linears (each summed bias as its two, recovered with ``d``), in float64."""
        grad_sq = param_sq = 0.0
        diffs = iter(self.bias_diffs)
        with torch.no_grad():
            for p, g, twice in zip(self.params, self.grads, self.twice):
                g, p = g.double(), p.double()
                if twice:
                    d = next(diffs).to(p.device)
                    grad_sq += 2 * float(g.dot(g))
                    param_sq += float(((p + d) / 2).square().sum() + ((p - d) / 2).square().sum())
                else:
                    grad_sq += float(g.square().sum())
                    param_sq += float(p.square().sum())
        return grad_sq ** 0.5 / param_sq ** 0.5

    def evaluate(self, batches, on_batch=None):
        """train.lua's eval_split over ``batches`` [(x, y)] from a zero state, without
        dropout: the mean loss; training then continues from its last batch's state."""
        self.model.eval()
        self.model.reset_states()
        loss, T = 0.0, None
        with torch.no_grad():
            for k, (x, y) in enumerate(batches, start=1):
                T = x.shape[1]
                scores = self.model(x.to(self.device))               # (B, T, V)
                V = scores.shape[-1]
                loss += float(F.cross_entropy(scores.reshape(-1, V),
                                              to_index(y.to(self.device)).reshape(-1),
                                              reduction="sum")) / x.shape[0]
                if on_batch is not None:
                    on_batch(k)
        self.model.train()
        return loss / T / len(batches) if batches else float("nan")

    def linears(self):
        """char-rnn's ``[(W, b)]`` in modules order, float64 on the CPU: the fused
        weights split back into Linears, each summed bias into its two."""
        return self._split(self.params, halves=True)

    def grad_linears(self):
        """The last clamped gradient as char-rnn's Linears' (both biases of a pair get
        the summed bias's gradient)."""
        return self._split(self.grads, halves=False)

    def _split(self, tensors, halves):
        net, H = self.net, self.net.rnn_size
        pairs = gate_pairs(net.model_type)
        blocks = len(pairs)
        out = []
        for layer, d in enumerate(self.bias_diffs):
            weight, bias = (t.detach().double().cpu() for t in tensors[2 * layer:2 * layer + 2])
            D = weight.shape[0] - H
            width = weight.shape[1] // blocks
            roles = {}
            for k, (x_role, h_role) in enumerate(pairs):
                cols = slice(k * width, (k + 1) * width)
                s = bias[cols]
                b_x, b_h = ((s + d[cols]) / 2, (s - d[cols]) / 2) if halves else (s, s)
                roles[x_role] = (weight[:D, cols].t().contiguous(), b_x)
                roles[h_role] = (weight[D:, cols].t().contiguous(), b_h)
            out += [roles[slot.role] for slot in net.slots if slot.layer == layer]
        out.append(tuple(t.detach().double().cpu() for t in tensors[-2:]))
        return out

    def sync_net(self):
        """Copy the trained weights back into ``net.params`` (char-rnn's flat vector)."""
        self.net.set_linears(self.linears())

    def states(self):
        """The state the next minibatch starts from, in char-rnn's order (c_1, h_1, ...
        for the LSTM), float64 on the CPU (zeros before any pass)."""
        out = []
        for rnn in self.model.rnns:
            state = rnn.state
            if state is None:
                state = tuple(torch.zeros(self.B, self.net.rnn_size)
                              for _ in range(STATES_PER_LAYER[self.net.model_type]))
            state = state[::-1] if len(state) == 2 else state        # (h, c) -> c, h
            out += [s.double().cpu() for s in state]
        return out


def _bias_differences(net):
    """Per layer, ``b_i2h - b_h2h`` of each gate pair, laid out as the fused layer's bias
    (G,) float64: the part of char-rnn's two biases that training never changes."""
    layers, _ = net.layer_views(net.linears())
    return [torch.cat([lin[x][1] - lin[h][1] for x, h in gate_pairs(net.model_type)]).clone()
            for lin in layers]
