"""Sampling from a LanguageModel, as sample.lua's ``LM:sample`` does, but fast and streaming.

The algorithm is the original's (docs/compatibility.md, sample): reset the states; run the
start text through the model (or start from equal scores: a uniform first token); then
repeatedly pick the next token -- the argmax, or one draw of ``torch.multinomial`` from
``exp(scores / T)`` normalised in double precision -- and feed it back. With a
:class:`TorchGenerator` seeded like ``torch.manualSeed(N)`` the draws, hence the text, are
the original's.

Fixes that do not change the defaults' results: the start text is split by the
vocabulary's tokens (any Unicode); a temperature low enough to overflow ``exp`` falls back
to subtracting the maximum first (down to the argmax in the limit); tokens stream out as they
are made, so the length is unbounded and memory stays flat; ``num_samples`` streams are
computed as one batch. A model with non-finite weights, or whose scores become NaN or
infinite, is refused (:class:`NonFiniteScores`) rather than sampled as nonsense.

One step of the model on the CPU goes through :class:`NumpyStepper`, which does only the
arithmetic of one time step with preallocated numpy buffers: per character, a framework's
per-call overhead would otherwise dominate a small model, and a large one is bound by
reading its weights from memory, which numpy's matrix-vector product does at full speed.
On a GPU, :class:`TorchStepper` does the same step in torch ops, replayed from one captured
CUDA graph per step when the sample is long.
"""
import contextlib
import math

import numpy as np
import torch
from scipy.special import expit

from .errors import TorchRNNError
from .ids import to_index, to_token_id
from .rng import TorchGenerator


class NonFiniteScores(TorchRNNError):
    """The model's weights or scores are NaN or infinite: there is nothing to sample from."""


def sample_ids(model, length, start_text="", sample=True, temperature=1.0, generator=None,
               num_samples=1):
    """Yield the sampled 1-based token ids, one int64 array of shape (num_samples,) per
    position, the start text's positions first; ``length`` positions in all.

    ``generator``: a TorchGenerator for the draws (a fresh OS-seeded one if None). The
    model is put in evaluation mode; its states are reset before and after. Raises
    :class:`NonFiniteScores` for a model with NaN/infinite weights or scores.
    """
    K = int(num_samples)
    if sample and not 0 < temperature < math.inf:
        raise TorchRNNError(f"the temperature must be a finite number above 0, got "
                            f"{temperature}")
    gen = generator if generator is not None else TorchGenerator()
    check_finite_model(model)
    model.eval()
    model.reset_states()
    device = next(model.parameters()).device
    try:
        if start_text:
            start = model.encode(start_text)                              # (T0,)
            if start.numel() > length:
                raise ValueError(f"the start text has {start.numel()} tokens, more than "
                                 f"the {length} to sample")
            with torch.no_grad():
                x = start.view(1, -1).expand(K, -1).to(device)            # (K, T0)
                scores = model(x)[:, -1].float().cpu().numpy()           # (K, V)
            if not np.isfinite(scores).all():
                raise _non_finite(start.numel())
            for token in start.tolist():
                yield np.full(K, token, dtype=np.int64)
            produced = start.numel()
        else:
            scores = np.ones((K, model.vocab_size), dtype=np.float32)     # uniform start
            produced = 0
        stepper = choose_stepper(model, K)
        stepper.plan(length - produced - 1)
        while produced < length:
            if sample:
                try:
                    with np.errstate(over="ignore"):
                        probs = torch7_probabilities(scores, temperature)
                except NonFiniteScores:
                    raise _non_finite(produced) from None
                chosen = gen.multinomial(probs, validate=False)
            else:
                chosen = scores.argmax(axis=1)     # first maximum (the method: 2 us less)
                # argmax picks a NaN or +inf where there is one: cheap to look at
                if not (math.isfinite(scores.item(chosen[0])) if K == 1 else
                        np.isfinite(scores[np.arange(K), chosen]).all()):
                    raise _non_finite(produced)
            ids = to_token_id(chosen.astype(np.int64, copy=False))      # (K,)
            yield ids
            produced += 1
            if produced < length:
                scores = stepper.step(ids)
    finally:
        model.reset_states()


def check_finite_model(model):
    """Refuse a model whose weights or statistics are NaN or infinite, or whose batch
    normalisation has a variance (plus eps) not above 0: its scores would be NaN."""
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise NonFiniteScores(f"the model's {name} holds NaN or infinite values; "
                                  f"refusing to sample from it")
    for index, bn in enumerate(getattr(model, "batchnorms", ()) if model.batchnorm else ()):
        if not bool((bn.running_var + bn.eps > 0).all()):
            raise NonFiniteScores(f"the model's batch normalisation {index + 1} has a "
                                  f"negative running variance; refusing to sample from it")


def _non_finite(position):
    return NonFiniteScores(f"the model's scores are NaN or infinite at token "
                           f"{position + 1}; refusing to sample from them")


def torch7_probabilities(scores, temperature):
    """sample.lua's distribution: ``exp(double(scores / T))`` (the division in the scores'
    float type), each row divided by its running sum. Rows whose ``exp`` overflows (the
    original then fails with "invalid multinomial distribution") are computed with their
    maximum subtracted first, which is the same distribution, safely; at temperatures so
    low that ``scores / T`` itself overflows, in double from the scores (argmax in the
    limit). Raises :class:`NonFiniteScores` for NaN or +inf scores (or -inf where the
    distribution needs the fallback)."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        scaled = scores if temperature == 1 else scores / scores.dtype.type(temperature)
        probs = np.exp(scaled, dtype=np.float64)                             # (K, V)
    total = np.cumsum(probs, axis=1)[:, -1:]                                 # sequential sum
    if (0.0 < float(total[0, 0]) < np.inf) if total.shape[0] == 1 else \
            (total.min() > 0 and total.max() < np.inf):
        probs /= total
        return probs
    bad = ~(np.isfinite(total[:, 0]) & (total[:, 0] > 0))
    if bad.any():
        rows = scores[bad].astype(np.float64)                                # (B, V)
        if not np.isfinite(rows).all():       # NaN, or inf - inf below: nothing to sample
            raise NonFiniteScores("the scores are NaN or infinite")
        worst = scaled[bad].astype(np.float64)
        top = worst.max(axis=1, keepdims=True)
        with np.errstate(invalid="ignore"):
            shifted = np.exp(worst - top)
        tiny = ~np.isfinite(top[:, 0])      # scores / T overflowed: inf - inf would be NaN
        if tiny.any():
            exact = rows[tiny]
            with np.errstate(over="ignore", under="ignore"):
                shifted[tiny] = np.exp((exact - exact.max(axis=1, keepdims=True))
                                       / float(temperature))
        probs[bad] = shifted
        total[bad] = np.cumsum(shifted, axis=1)[:, -1:]
    return probs / total


class NumpyStepper:
    """One time step of a LanguageModel (evaluation mode) for K streams, in numpy.

    Starts from the states the model's recurrent layers remember (e.g. after the start
    text) or zeros. ``step(ids)`` takes 1-based ids (K,) and returns scores (K, V) in the
    model's float type. Each layer keeps its input and its hidden state side by side in
    one buffer ``[x, h]`` (K, D+H), so that ``x Wx + h Wh`` is one product with torch-rnn's
    ``weight (D+H, G)``; the first layer's ``E Wx + b`` is precomputed for every token.
    A GRU layer's candidate needs ``r h`` where the others take h (:func:`_gru_step`).
    """

    def __init__(self, model, num_streams):
        K = num_streams
        as_np = lambda t: t.detach().cpu().contiguous().numpy()              # noqa: E731
        self.lstm = model.model_type == "lstm"
        self.gru = model.model_type == "gru"
        embedding = as_np(model.embedding.weight)                            # (V, D)
        self.layers = []
        for index, rnn in enumerate(model.rnns):
            weight, bias = as_np(rnn.weight), as_np(rnn.bias)                # (D+H, G), (G,)
            self.layers.append(_StepLayer(index, rnn, weight, bias, embedding, K,
                                          *_eval_affine(model, index)))
        for layer, following in zip(self.layers, self.layers[1:]):
            layer.out = following.x                                          # feeds the next
        self.W_out = np.ascontiguousarray(as_np(model.linear.weight).T)      # (H, V)
        self.b_out = as_np(model.linear.bias)                                # (V,)
        self.scores = np.empty((K, self.b_out.shape[0]), dtype=self.b_out.dtype)

    def plan(self, steps):
        """The caller will take ``steps`` more steps: nothing to prepare (see
        :meth:`TorchStepper.plan`)."""

    def step(self, ids):
        """ids (K,) 1-based -> scores (K, V) (a buffer reused by the next step)."""
        rows = to_index(ids)
        if rows.shape[0] == 1:
            rows = int(rows[0])                      # one stream: a row view, not a copy
        lstm = self.lstm
        for layer in self.layers:
            gates, H = layer.gates, layer.H
            h = layer.h
            if self.gru:
                _gru_step(layer, rows)
            else:
                np.dot(layer.xh, layer.W, out=gates)                       # x Wx + h Wh
                gates += layer.table[rows] if layer.table is not None else layer.b
            if lstm:
                c, tmp = layer.c, layer.tmp
                expit(gates[:, :3 * H], out=gates[:, :3 * H])              # i, f, o
                np.tanh(gates[:, 3 * H:], out=gates[:, 3 * H:])            # g
                c *= gates[:, H:2 * H]
                np.multiply(gates[:, :H], gates[:, 3 * H:], out=tmp)
                c += tmp                                                   # c = f c + i g
                np.tanh(c, out=h)
                h *= gates[:, 2 * H:3 * H]                                 # h = o tanh(c)
            elif not self.gru:
                np.tanh(gates, out=h)
            out = layer.out
            if layer.scale is not None:
                np.multiply(h, layer.scale, out=out)
                out += layer.shift
            elif out is not h:
                np.copyto(out, h)
        np.dot(self.layers[-1].out, self.W_out, out=self.scores)
        self.scores += self.b_out
        return self.scores                                                 # (K, V)


class _StepLayer:
    """Buffers and weights of one recurrent layer for :class:`NumpyStepper`."""

    __slots__ = ("H", "xh", "x", "h", "c", "W", "b", "table", "gates", "tmp", "scale",
                 "shift", "out", "Wc", "Wxc", "rh", "cand")

    def __init__(self, index, rnn, weight, bias, embedding, K, scale, shift):
        D, H = rnn.input_dim, rnn.hidden_dim
        dtype = weight.dtype
        self.H = H
        if index == 0:            # the input part comes from the precomputed table
            self.table = embedding @ weight[:D] + bias                       # (V, G)
            self.b = None
            self.W = np.ascontiguousarray(weight[D:])                        # (H, G)
            self.xh = np.zeros((K, H), dtype=dtype)
            self.x = None
            self.h = self.xh
        else:
            self.table, self.b = None, bias
            self.W = weight                                                  # (D+H, G)
            self.xh = np.zeros((K, D + H), dtype=dtype)
            self.x, self.h = self.xh[:, :D], self.xh[:, D:]
        state = rnn.state
        self.c = np.zeros((K, H), dtype=dtype) if rnn.gates == 4 else None
        if state is not None and state[0].shape[0] == K:
            self.h[...] = state[0].detach().cpu().numpy()
            if self.c is not None:
                self.c[...] = state[1].detach().cpu().numpy()
        self.gates = np.empty((K, weight.shape[1]), dtype=dtype)
        self.tmp = np.empty((K, H), dtype=dtype)
        self.Wc = self.Wxc = self.rh = self.cand = None
        if rnn.gates == 3:
            self._gru_weights(weight, D, H, K)
        self.scale, self.shift = scale, shift
        self.out = self.h         # the last layer's output is its state (or scaled copy)
        if scale is not None:
            self.out = np.empty((K, H), dtype=dtype)

    def _gru_weights(self, weight, D, H, K):
        """A GRU's weights split: ``W`` gives z | r from ``[x, h]`` (or h), ``Wc`` the
        candidate from ``r h`` and ``Wxc`` from x (in the table for the first layer)."""
        first_row = D if self.table is not None else 0      # first layer: the h rows only
        self.W = np.ascontiguousarray(weight[first_row:, :2 * H])          # (D+H | H, 2H)
        self.Wc = np.ascontiguousarray(weight[D:, 2 * H:])                 # (H, H)
        self.Wxc = None if self.table is not None else \
            np.ascontiguousarray(weight[:D, 2 * H:])                       # (D, H)
        self.gates = np.empty((K, 2 * H), dtype=weight.dtype)              # z | r
        self.rh = np.empty((K, H), dtype=weight.dtype)
        self.cand = np.empty((K, H), dtype=weight.dtype)


def _gru_step(layer, rows):
    """One GRU step of a :class:`_StepLayer` in place: ``h' = h - z h + z c`` (the order of
    :class:`~torchrnn_py.modules.GRU`'s loop), ``c = tanh(x Wx_c + (r h) Wh_c + b_c)``."""
    H, h, zr, cand, tmp = layer.H, layer.h, layer.gates, layer.cand, layer.tmp
    np.dot(layer.xh, layer.W, out=zr)                               # x Wx + h Wh (z | r)
    row = layer.table[rows] if layer.table is not None else None    # (K, 3H) or (3H,)
    zr += row[..., :2 * H] if row is not None else layer.b[:2 * H]
    expit(zr, out=zr)
    np.multiply(zr[:, H:], h, out=layer.rh)                         # r h
    np.dot(layer.rh, layer.Wc, out=cand)
    if row is not None:
        cand += row[..., 2 * H:]
    else:
        np.dot(layer.x, layer.Wxc, out=tmp)
        cand += tmp
        cand += layer.b[2 * H:]
    np.tanh(cand, out=cand)
    z = zr[:, :H]
    np.multiply(z, h, out=tmp)
    h -= tmp
    np.multiply(z, cand, out=tmp)
    h += tmp


def _eval_affine(model, index):
    """What follows recurrent layer ``index`` in evaluation mode, as ``x * scale + shift``
    (batch normalisation with running statistics, old "v1" dropout's 1 - p), or Nones."""
    scale = shift = None
    if model.batchnorm:
        bn = model.batchnorms[index]
        inv_std = 1.0 / torch.sqrt(bn.running_var.double() + bn.eps)
        scale = (bn.weight.double() * inv_std)
        shift = bn.bias.double() - bn.running_mean.double() * scale
    if model.dropout > 0 and not model.dropouts[index].v2:
        keep = 1.0 - model.dropouts[index].p
        scale = torch.full((model.rnn_size,), keep, dtype=torch.float64) \
            if scale is None else scale * keep
        shift = torch.zeros(model.rnn_size, dtype=torch.float64) if shift is None else shift * keep
    if scale is None:
        return None, None
    dtype = model.linear.weight.dtype
    return (scale.to(dtype).detach().cpu().numpy(), shift.to(dtype).detach().cpu().numpy())


# NumpyStepper for at most this many streams of a model with at most this many recurrent
# weights (it then fits the CPU's cache and beats a GPU's per-step launches and transfers)
NUMPY_MAX_STREAMS = 4
NUMPY_MAX_WEIGHTS = 4_000_000


def choose_stepper(model, num_streams):
    """The fastest stepper for ``model``: numpy on the CPU, and for a few streams of a model
    that fits the CPU's cache; otherwise :class:`TorchStepper` on the model's device."""
    device = next(model.parameters()).device
    weights = sum(rnn.weight.numel() for rnn in model.rnns)
    if device.type == "cpu" or (num_streams <= NUMPY_MAX_STREAMS
                                and weights <= NUMPY_MAX_WEIGHTS):
        return NumpyStepper(model, num_streams)
    return TorchStepper(model, num_streams)


# A TorchStepper on CUDA captures its step as a CUDA graph when it will run at least this
# many steps (as told by plan(), or, when not told, once it has run this many). A guess
# until measured on a GPU: capture costs GRAPH_WARMUP_STEPS eager steps plus the capture.
GRAPH_MIN_STEPS = 64
GRAPH_WARMUP_STEPS = 3      # eager steps on a side stream before capture (PyTorch's pattern)


class TorchStepper:
    """:class:`NumpyStepper`'s time step in torch ops on the model's device (a GPU): the
    weights are laid out once (the first layer's ``E Wx + b`` as a table, ``[x, h]`` times
    torch-rnn's ``weight``), one small transfer in and one out per step. ``num_streams``:
    K, or None to take it from the first step's ids.

    The step reads and writes static buffers only (:meth:`_run`), so that on CUDA it is
    captured once as a CUDA graph and replayed per step (see GRAPH_MIN_STEPS). ``graphs``:
    None for "on CUDA", True to take the capture path on any device (elsewhere it replays
    the step itself), False for never. ``path`` says which ran ("eager" or "graph"),
    ``capture_error`` why a capture failed (the stepper then stays eager, same results).
    """

    def __init__(self, model, num_streams=None, graphs=None):
        self.lstm = model.model_type == "lstm"
        self.gru = model.model_type == "gru"
        self.device = next(model.parameters()).device
        self.model, self.layers = model, None
        self.graphs = self.device.type == "cuda" if graphs is None else bool(graphs)
        self.path, self.capture_error = "eager", None
        self.planned, self.steps_run, self._replay = None, 0, None
        if num_streams is not None:
            self._lay_out(model, num_streams)

    def plan(self, steps):
        """The caller will take ``steps`` more steps: a CUDA graph pays off only for long
        runs (GRAPH_MIN_STEPS)."""
        self.planned = self.steps_run + int(steps)

    def _lay_out(self, model, K):
        with torch.no_grad():
            embedding = model.embedding.weight.detach()                      # (V, D)
            self.layers = [self._layer(model, index, rnn, embedding, K)
                           for index, rnn in enumerate(model.rnns)]
            self.W_out = model.linear.weight.detach().t().contiguous()      # (H, V)
            self.b_out = model.linear.bias.detach()                         # (V,)
            self._buffers(K)

    def _layer(self, model, index, rnn, embedding, K):
        """Weights, state (K, H) and static buffers of one recurrent layer, as a dict; a
        layer above the first has an input buffer ``x`` (K, D) that the one below writes."""
        D, H = rnn.input_dim, rnn.hidden_dim
        weight, bias = rnn.weight.detach(), rnn.bias.detach()              # (D+H, G), (G,)
        zeros = weight.new_zeros(K, H)
        state = rnn.state if rnn.state is not None and rnn.state[0].shape[0] == K else None
        layer = {"H": H, "h": zeros.clone(), "c": None if rnn.gates != 4 else zeros.clone(),
                 "x": None, "xh": None,
                 "gates": None if rnn.gates == 3 else weight.new_empty(K, weight.shape[1])}
        if state is not None:
            for name, value in zip(("h", "c"), state):
                layer[name].copy_(value)
        if index == 0:
            layer.update(table=embedding @ weight[:D] + bias, W=weight[D:].contiguous(), b=None)
        else:
            layer.update(table=None, W=weight.contiguous(), b=bias)
            if rnn.gates == 3:
                layer["x"] = weight.new_zeros(K, D)                          # (K, D)
            else:
                layer["xh"] = weight.new_zeros(K, D + H)                     # [x, h] (K, D+H)
                layer["x"] = layer["xh"][:, :D]
        if rnn.gates == 3:        # GRU: z | r from h (and x), the candidate from r h (and x)
            layer.update(W=weight[D:, :2 * H].contiguous(), Wc=weight[D:, 2 * H:].contiguous(),
                         Wx=None if index == 0 else weight[:D].contiguous())
        scale, shift = _eval_affine(model, index)
        layer["scale"] = None if scale is None else torch.from_numpy(scale).to(self.device)
        layer["shift"] = None if shift is None else torch.from_numpy(shift).to(self.device)
        return layer

    def _buffers(self, K):
        """The static rows (K,), each layer's output (the next one's x, or the last one's
        h or affine output), the scores (K, V) in float32, and on CUDA pinned host copies."""
        device, dtype = self.device, self.W_out.dtype
        self.rows = torch.zeros(K, dtype=torch.int64, device=device)          # (K,)
        for layer, following in zip(self.layers, self.layers[1:]):
            layer["out"] = following["x"]
        last = self.layers[-1]
        last["out"] = last["h"] if last["scale"] is None else torch.empty_like(last["h"])
        self.scores = torch.empty(K, self.W_out.shape[1], dtype=dtype, device=device)
        self.scores32 = self.scores if dtype == torch.float32 else \
            torch.empty_like(self.scores, dtype=torch.float32)                # (K, V)
        self._rows_host, self._scores_host, self._done = self.rows, self.scores32, None
        if device.type == "cuda":               # pinned, for transfers that do not block
            self._rows_host = torch.empty(K, dtype=torch.int64, pin_memory=True)
            self._scores_host = torch.empty(self.scores32.shape, dtype=torch.float32,
                                            pin_memory=True)
            self._done = torch.cuda.Event()

    @torch.no_grad()
    def step(self, ids):
        """ids (K,) 1-based -> scores (K, V) as a float32 numpy array of its own."""
        if self.layers is None:
            self._lay_out(self.model, ids.shape[0])
        if self._replay is None and self._wants_graph():
            self._make_graph()
        self._rows_host.copy_(torch.from_numpy(to_index(ids)))
        if self._rows_host is not self.rows:
            self.rows.copy_(self._rows_host, non_blocking=True)
        (self._run if self._replay is None else self._replay)()
        if self._scores_host is not self.scores32:
            self._scores_host.copy_(self.scores32, non_blocking=True)
            self._done.record(torch.cuda.current_stream(self.device))
            self._done.synchronize()
        self.steps_run += 1
        return self._scores_host.numpy().copy()                              # (K, V)

    def _run(self):
        """One step on the static buffers only: rows (K,) -> every layer's h (and c) in
        place -> scores (K, V); no host sync and nothing kept, so CUDA can capture it."""
        for layer in self.layers:
            if self.gru:
                _torch_gru_step(layer, self.rows)
            else:
                self._lstm_rnn_step(layer)
            h, out = layer["h"], layer["out"]
            if layer["scale"] is not None:                         # batchnorm, v1 dropout
                torch.mul(h, layer["scale"], out=out)
                out += layer["shift"]
            elif out is not h:
                out.copy_(h)                                       # the next layer's x
        torch.matmul(self.layers[-1]["out"], self.W_out, out=self.scores)
        self.scores += self.b_out
        if self.scores32 is not self.scores:
            self.scores32.copy_(self.scores)

    def _lstm_rnn_step(self, layer):
        """One LSTM or vanilla RNN step of a layer, its h (and c) written in place."""
        H, h, gates = layer["H"], layer["h"], layer["gates"]
        if layer["table"] is not None:
            torch.matmul(h, layer["W"], out=gates)                           # (K, G)
            gates += layer["table"][self.rows]
        else:
            layer["xh"][:, layer["x"].shape[1]:].copy_(h)                    # [x, h]
            torch.matmul(layer["xh"], layer["W"], out=gates)
            gates += layer["b"]
        if self.lstm:
            ifo = torch.sigmoid(gates[:, :3 * H])
            g = torch.tanh(gates[:, 3 * H:])
            c = layer["c"]
            c *= ifo[:, H:2 * H]
            c += ifo[:, :H] * g                                              # c = f c + i g
            torch.tanh(c, out=h)
            h *= ifo[:, 2 * H:]                                              # h = o tanh(c)
        else:
            torch.tanh(gates, out=h)

    def _wants_graph(self):
        """Capture when graphs are on, not tried yet, and the steps ahead (as planned, or
        when not told, as many as have already run) reach GRAPH_MIN_STEPS."""
        if not self.graphs or self.capture_error is not None:
            return False
        ahead = self.steps_run if self.planned is None else self.planned - self.steps_run
        return ahead >= GRAPH_MIN_STEPS

    def _make_graph(self):
        """Warm up on a side stream, capture :meth:`_run` through :func:`_capture`, then put
        back the states the warm-up advanced; on a RuntimeError stay eager and say why."""
        states = [t for layer in self.layers for t in (layer["h"], layer["c"]) if t is not None]
        saved = [t.clone() for t in states]
        try:
            with _side_stream(self.device):
                for _ in range(GRAPH_WARMUP_STEPS):
                    self._run()
            self._replay = _capture(self._run, self.device)
            self.path = "graph"
        except RuntimeError as error:
            self.capture_error = f"{type(error).__name__}: {error}"
        finally:
            for state, before in zip(states, saved):
                state.copy_(before)


@contextlib.contextmanager
def _side_stream(device):
    """On CUDA, run the block on a fresh stream ordered after the current one and before
    what follows (the warm-up before a capture); elsewhere, just run it."""
    if device.type != "cuda":
        yield
        return
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    try:
        with torch.cuda.stream(stream):
            yield
    finally:                                # also after a failed warm-up: then the states
        torch.cuda.current_stream(device).wait_stream(stream)       # are put back after it


def _capture(fn, device):
    """``fn`` (static buffers only) recorded once as a CUDA graph; returns its replay. On
    any other device, ``fn`` itself: the seam through which a CPU test drives this path."""
    if device.type != "cuda":
        return fn
    graph = torch.cuda.CUDAGraph()
    # a capture stream of this device (torch's default one is made once, on the device
    # current then); the outer stream context restores the current stream even when the
    # capture fails and torch's graph context does not
    with torch.cuda.device(device), torch.cuda.stream(torch.cuda.current_stream(device)), \
            torch.cuda.graph(graph, stream=torch.cuda.Stream(device)):
        fn()
    return graph.replay


def _torch_gru_step(layer, rows):
    """One GRU step of a :class:`TorchStepper` layer, h (K, H) written in place, from rows
    (K,) (the first layer) or the input buffer x (K, D) that the layer below wrote."""
    # products, then in-place sums (addmm with a strided input can be far slower on CPUs)
    H, h = layer["H"], layer["h"]
    if layer["table"] is not None:
        inp = layer["table"][rows]                                         # (K, 3H)
    else:
        inp = layer["x"] @ layer["Wx"]
        inp += layer["b"]
    zr = (h @ layer["W"]).add_(inp[:, :2 * H]).sigmoid_()                  # z | r
    z = zr[:, :H]
    c = ((zr[:, H:] * h) @ layer["Wc"]).add_(inp[:, 2 * H:]).tanh_()
    h.addcmul_(z, h, value=-1).addcmul_(z, c)                              # h - z h + z c
