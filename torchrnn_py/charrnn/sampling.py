"""char-rnn's sample.lua over a :class:`~torchrnn_py.model.LanguageModel`, draw for draw.

What sample.lua does (docs/compatibility.md, "char-rnn: sample.lua"): the state starts at
zeros; each primetext byte is fed in turn and the last step's ``nn.LogSoftMax`` output is
the prediction -- or, with no primetext, the *probabilities* ``1/V`` stand in for it. Then,
``length`` times: the argmax (``-sample 0``, first index on ties), or ``prediction / T``,
``exp``, divided by its sum in double, cast to float32 and one ``torch.multinomial`` draw;
the chosen byte is fed back. With a :class:`TorchGenerator` seeded as
``torch.manualSeed(seed)`` the bytes are char-rnn's.

The per-byte steps go through the fast steppers of torchrnn_py/sampling.py (numpy for a
model that fits the CPU's cache), the primetext through one forward pass. Scores are taken
to float64 before the LogSoftMax (char-rnn's CPU checkpoints are double throughout). A
temperature so low that ``exp`` overflows or underflows everywhere (char-rnn then fails
with "invalid multinomial distribution") is computed with the maximum subtracted first.
"""
import math

import numpy as np
import torch

from ..errors import TorchRNNError
from ..ids import to_token_id
from ..rng import TorchGenerator
from ..sampling import (NonFiniteScores, check_finite_model, choose_stepper,
                        torch7_probabilities)

DEFAULT_SEED = 123            # sample.lua's -seed


def log_softmax(scores):
    """nn.LogSoftMax of one row of scores (V,) in float64: ``y - (max + log sum exp(y - max))``
    with the sum taken in order, as Torch7 computes it. Raises :class:`NonFiniteScores` for
    NaN or +inf scores."""
    y = scores.astype(np.float64, copy=False)                               # (V,)
    top = y.max()
    with np.errstate(invalid="ignore"):                  # inf - inf: NaN, refused below
        logsum = top + math.log(np.cumsum(np.exp(y - top))[-1])
    if not math.isfinite(logsum):
        raise NonFiniteScores("the scores are NaN or infinite")
    return y - logsum                                                       # (V,)


def choose(prediction, sample, temperature, generator):
    """The 0-based index sample.lua picks from ``prediction`` (V,) float64 (log-probabilities,
    or the uniform start's probabilities): the first maximum, or one multinomial draw from
    ``exp(prediction / T)`` normalised in double and cast to float32."""
    if not sample:
        return int(prediction.argmax())
    probs = torch7_probabilities(prediction.reshape(1, -1), temperature)   # (1, V) float64
    return generator.multinomial(probs[0].astype(np.float32), validate=False)


def check_options(length, sample, temperature):
    """Refuse what sample.lua would turn into nothing or an error: ``length`` not a positive
    integer; with sampling, a temperature that is not a finite number above 0."""
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
        raise TorchRNNError(f"-length must be a positive integer, got {length}")
    if sample and not 0 < temperature < math.inf:
        raise TorchRNNError(f"-temperature must be a finite number above 0, got {temperature}")


def sample_ids(model, length, primetext=b"", sample=True, temperature=1.0, generator=None):
    """Yield sample.lua's 1-based ids, one int64 array of shape (1,) each: the primetext's
    bytes, then ``length`` chosen ones.

    ``primetext``: raw bytes (each must be in the vocabulary: a TorchRNNError naming the
    first that is not). ``generator``: a TorchGenerator (seeded 123, sample.lua's default, if
    None). The model's states are reset before and after. Raises :class:`NonFiniteScores`
    for NaN/infinite weights or scores.
    """
    check_options(length, sample, temperature)
    gen = generator if generator is not None else TorchGenerator(DEFAULT_SEED)
    prime = model.vocab.encode_bytes(primetext) if primetext else None     # (T0,)
    check_finite_model(model)
    model.eval()
    model.reset_states()
    try:
        if prime is not None:
            device = next(model.parameters()).device
            with torch.no_grad():
                scores = model(prime.view(1, -1).to(device))[0, -1]        # (V,)
            prediction = _checked(log_softmax, scores.double().cpu().numpy(), 0)
            for token in prime.tolist():
                yield np.array([token], dtype=np.int64)
        else:
            V = model.vocab_size
            prediction = np.full(V, 1.0) / V                                # probabilities
        stepper = choose_stepper(model, 1)
        for position in range(length):
            index = _checked(choose, prediction, position, sample, temperature, gen)
            ids = np.array([to_token_id(index)], dtype=np.int64)           # (1,)
            yield ids
            if position + 1 < length:      # char-rnn also feeds the last byte; unused
                prediction = _checked(log_softmax, stepper.step(ids)[0], position + 1)
    finally:
        model.reset_states()


def _checked(function, values, position, *args):
    """``function(values, *args)``, a NonFiniteScores naming the 1-based sampled position."""
    try:
        return function(values, *args)
    except NonFiniteScores:
        raise NonFiniteScores(f"the model's scores are NaN or infinite before sampled byte "
                              f"{position + 1}; refusing to sample from them") from None


def sample_bytes(model, length, primetext=b"", sample=True, temperature=1.0, generator=None):
    """sample.lua's output as bytes: the primetext, then ``length`` sampled bytes (without
    the trailing newline the command writes). Arguments as :func:`sample_ids`."""
    ids = [int(step[0]) for step in
           sample_ids(model, length, primetext, sample, temperature, generator)]
    return model.vocab.decode_bytes(ids)
