"""torch-rnn's ``nn.LanguageModel``: embedding, recurrent layers, a linear read-out.

``LookupTable(V, D)`` -> for each layer: ``LSTM``/``VanillaRNN``/``GRU`` (D inputs for the first,
H after) -> ``BatchNormalization(H)`` if batchnorm -> ``Dropout(p)`` if dropout > 0 ->
``Linear(H, V)`` at every time step. Input: 1-based token ids ``(N, T)``; output:
unnormalised scores ``(N, T, V)``. Every recurrent layer remembers its final state and
starts the next pass from it until :meth:`LanguageModel.reset_states`.

Token ids are 1-based at every public boundary, as in torch-rnn; :func:`to_index` and
:func:`to_token_id` (torchrnn_py/ids.py) are the only places that move between them and
0-based indices.
"""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .ids import to_index, to_token_id  # noqa: F401 (re-exported: the old import path)
from .modules import GRU, LSTM, Dropout, VanillaRNN
from .rng import TorchGenerator
from .sampling import sample_ids
from .vocab import Vocab

MODEL_TYPES = ("lstm", "rnn", "gru")
RNN_LAYERS = {"lstm": LSTM, "rnn": VanillaRNN, "gru": GRU}


class LanguageModel(nn.Module):
    """A character-level language model laid out exactly like torch-rnn's.

    ``idx_to_token`` is a 1-based mapping (dict ``{1: 'a', ...}``) or a :class:`Vocab`.
    ``generator``: the :class:`TorchGenerator` that draws the initial weights in
    Torch7's order (seeded runs reproduce the original); a fresh OS-seeded one if None.
    ``init=False`` skips that draw, for a model whose weights are about to be loaded.
    """

    def __init__(self, idx_to_token, model_type="lstm", wordvec_size=64, rnn_size=128,
                 num_layers=2, dropout=0.0, batchnorm=0, generator=None, *, init=True):
        super().__init__()
        if model_type not in MODEL_TYPES:
            raise ValueError(f"model_type must be 'lstm', 'rnn' or 'gru', got {model_type!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if num_layers < 1 or rnn_size < 1 or wordvec_size < 1:
            raise ValueError("num_layers, rnn_size and wordvec_size must be positive")
        self.vocab = idx_to_token if isinstance(idx_to_token, Vocab) else Vocab(idx_to_token)
        self.model_type = model_type
        self.wordvec_dim = int(wordvec_size)
        self.rnn_size = int(rnn_size)
        self.num_layers = int(num_layers)
        self.dropout = float(dropout)
        self.batchnorm = 1 if batchnorm == 1 else 0       # LanguageModel.lua tests == 1
        V, D, H = len(self.vocab), self.wordvec_dim, self.rnn_size
        self.vocab_size = V

        rnn_class = RNN_LAYERS[model_type]
        self.embedding = nn.Embedding(V, D)
        self.rnns = nn.ModuleList()
        self.batchnorms = nn.ModuleList()
        self.dropouts = nn.ModuleList()
        for layer in range(self.num_layers):
            rnn = rnn_class(D if layer == 0 else H, H)
            rnn.remember_states = True
            self.rnns.append(rnn)
            if self.batchnorm:
                self.batchnorms.append(nn.BatchNorm1d(H, eps=1e-5, momentum=0.1))
            if self.dropout > 0:
                self.dropouts.append(Dropout(self.dropout))
        self.linear = nn.Linear(H, V)
        if init:
            self.reset_parameters(generator)

    # -- vocabulary ---------------------------------------------------------------------
    @property
    def idx_to_token(self):
        return self.vocab.idx_to_token

    @property
    def token_to_idx(self):
        return self.vocab.token_to_idx

    def encode(self, text):
        """Text -> 1-based token ids, a LongTensor (T,)."""
        return self.vocab.encode(text)

    def decode(self, token_ids):
        """1-based token ids -> text."""
        return self.vocab.decode(token_ids)

    # -- parameters -----------------------------------------------------------------------
    def reset_parameters(self, generator=None):
        """Initialise every weight as torch-rnn does, drawing in Torch7's order.

        LookupTable ~ N(0, 1); per layer the RNN weight ~ N(0, 1/sqrt(D+H)) (LSTM forget
        bias 1; GRU: its bias first, also ~ N(0, 1/sqrt(D+H))) and the BatchNormalization
        weight ~ U(0, 1), bias 0; then the Linear weight and bias ~ U(-1/sqrt(H),
        1/sqrt(H)). Values are drawn in double and stored as float, as when train.lua
        builds the model and casts it.
        """
        gen = TorchGenerator() if generator is None else generator
        H = self.rnn_size
        with torch.no_grad():
            _fill(self.embedding.weight, gen.normal(self.embedding.weight.numel(), 0.0, 1.0))
            for layer, rnn in enumerate(self.rnns):
                rnn.reset_parameters(gen)
                if self.batchnorm:
                    bn = self.batchnorms[layer]
                    bn.reset_running_stats()
                    _fill(bn.weight, gen.uniform(bn.weight.numel()))
                    bn.bias.zero_()
            bound = 1.0 / H ** 0.5
            _fill(self.linear.weight, gen.uniform(self.linear.weight.numel(), -bound, bound))
            _fill(self.linear.bias, gen.uniform(self.linear.bias.numel(), -bound, bound))

    def set_dropout_generator(self, generator, rows=None):
        """Draw dropout masks from ``generator``: a TorchGenerator (Torch7's masks), a
        torch.Generator, or None (PyTorch's default). ``rows = (start, stop, N)``: this
        process holds rows start..stop of an N-row batch (masks are drawn for all N)."""
        for dropout in self.dropouts:
            dropout.generator = generator
            dropout.rows = rows

    # -- running --------------------------------------------------------------------------
    def reset_states(self):
        """Make the next pass start every recurrent layer from zeros (``resetStates``)."""
        for rnn in self.rnns:
            rnn.reset_states()

    def get_states(self):
        """Each recurrent layer's remembered state: a list of ``(h, c)`` (LSTM) or ``(h,)``
        (RNN, GRU) tuples of ``(N, H)`` tensors, None for a layer that starts from zeros."""
        return [rnn.state for rnn in self.rnns]

    def set_states(self, states):
        """Make the next pass start each layer from ``states`` (as :meth:`get_states`
        returns them; None = zeros)."""
        states = list(states)
        if len(states) != len(self.rnns):
            raise ValueError(f"expected {len(self.rnns)} layer states, got {len(states)}")
        for rnn, state in zip(self.rnns, states):
            rnn.state = state

    # -precision bf16/fp16 on CUDA (device.use_precision): the forward pass's autocast dtype
    autocast_dtype = None

    def forward(self, token_ids):
        """token_ids (N, T), 1-based -> scores (N, T, V), float32 (autocast on CUDA when
        ``autocast_dtype`` is set)."""
        if self.autocast_dtype is not None and token_ids.is_cuda:
            with torch.autocast("cuda", dtype=self.autocast_dtype):
                scores = self._forward(token_ids)
            return scores.float()
        return self._forward(token_ids)

    def _forward(self, token_ids):
        N, T = token_ids.shape
        H = self.rnn_size
        h = self.embedding(to_index(token_ids))                     # (N, T, D)
        for layer, rnn in enumerate(self.rnns):
            h = rnn(h)                                              # (N, T, H)
            if self.batchnorm:
                h = self.batchnorms[layer](h.reshape(N * T, H)).view(N, T, H)
            if self.dropout > 0:
                h = self.dropouts[layer](h)
        return self.linear(h)                                       # (N, T, V)

    def loss(self, scores, targets):
        """Cross-entropy of scores (N, T, V) against 1-based targets (N, T), averaged
        over all N*T positions (torch-rnn's CrossEntropyCriterion)."""
        V = scores.shape[-1]
        return F.cross_entropy(scores.reshape(-1, V), to_index(targets).reshape(-1))

    # -- sampling -------------------------------------------------------------------------
    def sample(self, length=100, start_text="", sample=True, temperature=1.0, seed=None,
               generator=None, num_samples=1):
        """Sample text as sample.lua does: ``length`` tokens in all, the start text first.

        ``sample=False`` takes the argmax at each step; ``seed`` makes the draws those of
        the original after ``torch.manualSeed(seed)`` (or pass a ``generator``). Returns a
        string, or a list of ``num_samples`` strings computed as one batch.
        """
        gen = generator if generator is not None else TorchGenerator(seed)
        steps = list(sample_ids(self, length, start_text, sample, temperature, gen, num_samples))
        ids = np.stack(steps, axis=1) if steps else np.zeros((num_samples, 0), np.int64)
        texts = [self.decode(row) for row in ids]
        return texts[0] if num_samples == 1 else texts

    def sample_stream(self, length=100, start_text="", sample=True, temperature=1.0,
                      seed=None, generator=None):
        """Like :meth:`sample` (one stream), yielding each token's text as it is made."""
        gen = generator if generator is not None else TorchGenerator(seed)
        for ids in sample_ids(self, length, start_text, sample, temperature, gen, 1):
            yield self.idx_to_token[int(ids[0])]

    def extra_repr(self):
        return (f"model_type={self.model_type!r}, vocab_size={self.vocab_size}, "
                f"wordvec_dim={self.wordvec_dim}, rnn_size={self.rnn_size}, "
                f"num_layers={self.num_layers}, dropout={self.dropout}, "
                f"batchnorm={self.batchnorm}")


def _fill(param, values):
    """Store float64 draws into a parameter (row-major), casting to its dtype."""
    param.copy_(torch.from_numpy(values).view_as(param))
