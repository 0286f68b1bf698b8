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


def log_softmax(scores, out=None, work=None):
    """nn.LogSoftMax of one row of scores (V,) in float64: ``y - (max + log sum exp(y - max))``
    with the sum taken in order, as Torch7 computes it; ``out``, ``work``: float64 (V,)
    buffers to reuse. Raises :class:`NonFiniteScores` for NaN or +inf scores."""
    y = scores.astype(np.float64, copy=False)                               # (V,)
    work = np.empty_like(y) if work is None else work
    top = y.max()
    with np.errstate(invalid="ignore"):                  # inf - inf: NaN, refused below
        np.subtract(y, top, out=work)
    np.exp(work, out=work)
    np.cumsum(work, out=work)
    logsum = top + math.log(work[-1])
    if not math.isfinite(logsum):
        raise NonFiniteScores("the scores are NaN or infinite")
    return np.subtract(y, logsum, out=out)                                  # (V,)


def choose(prediction, sample, temperature, generator, work=None, probs32=None):
    """The 0-based index sample.lua picks from ``prediction`` (V,) float64 (log-probabilities,
    or the uniform start's probabilities): the first maximum, or one multinomial draw from
    ``exp(prediction / T)`` normalised in double and cast to float32. ``work`` (float64) and
    ``probs32`` (float32), both (V,): buffers to reuse."""
    if not sample:
        return int(prediction.argmax())
    work = np.empty_like(prediction) if work is None else work
    probs32 = np.empty(prediction.shape, np.float32) if probs32 is None else probs32
    with np.errstate(over="ignore", under="ignore"):
        scaled = prediction if temperature == 1 else \
            np.divide(prediction, temperature, out=work)
        np.exp(scaled, out=work)
    total = np.cumsum(work)[-1]                                             # in order
    if 0 < total < math.inf:
        np.divide(work, total, out=work)
    else:              # exp overflowed or underflowed everywhere: the maximum subtracted
        work[:] = torch7_probabilities(prediction.reshape(1, -1), temperature)[0]
    np.copyto(probs32, work, casting="same_kind")
    return generator.multinomial(probs32, validate=False)


def first_max_of_log_softmax(scores, out=None, work=None):
    """The 0-based first maximum of :func:`log_softmax` (scores) without computing it, when
    no earlier score is within rounding of the maximum: ``y - c`` for ``c`` between
    ``max(y)`` and ``max(y) + log V`` keeps the order of scores more than ``delta`` apart.
    Otherwise (a possible tie after rounding) it is computed."""
    y = scores.astype(np.float64, copy=False)                               # (V,)
    index = int(y.argmax())                  # a NaN or +inf would be taken: refused here
    top = y.item(index)
    if not math.isfinite(top):
        raise NonFiniteScores("the scores are NaN or infinite")
    delta = 1e-12 * (2.0 + math.log(y.shape[0]))
    if index and (y[:index] >= top - delta).any():
        return int(log_softmax(y, out, work).argmax())
    return index


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
            prediction = _checked(log_softmax, scores.double().cpu().numpy(), 0)  # (V,)
            for token in prime.tolist():
                yield np.array([token], dtype=np.int64)
        else:
            prediction = np.full(model.vocab_size, 1.0) / model.vocab_size  # probabilities
        stepper = choose_stepper(model, 1)
        stepper.plan(length - 1)
        work, probs32 = np.empty(model.vocab_size), np.empty(model.vocab_size, np.float32)
        for position in range(length):
            if position and not sample:
                index = _checked(first_max_of_log_softmax, scores, position, prediction, work)
            else:
                if position:
                    prediction = _checked(log_softmax, scores, position, prediction, work)
                index = _checked(choose, prediction, position, sample, temperature, gen,
                                 work, probs32)
            ids = np.array([to_token_id(index)], dtype=np.int64)           # (1,)
            yield ids
            if position + 1 < length:      # char-rnn also feeds the last byte; unused
                scores = stepper.step(ids)[0]                              # (V,)
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
