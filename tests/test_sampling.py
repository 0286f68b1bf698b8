"""Sampling reproduced: the golden samples of the original sample.lua (argmax, seeded at
temperatures 0.8 and 1, with and without start text), the numpy stepper against the model's
own forward pass, the temperature arithmetic, streams, seeds and start-text handling."""
import re

import numpy as np
import pytest
import torch

from conftest import GOLDEN, LEGACY
from torchrnn_py.cli import sample as sample_cli
from torchrnn_py import sample as sample_mod
from torchrnn_py.checkpoint import load_model
from torchrnn_py.errors import TorchRNNError
from torchrnn_py.rng import TorchGenerator
from torchrnn_py.sampling import NonFiniteScores, NumpyStepper, sample_ids, torch7_probabilities

CHECKPOINTS = GOLDEN / "checkpoints"
SAMPLES = GOLDEN / "samples"
START = "To be, or not to be"
GOLDEN_LENGTH = 300
CHINESE = LEGACY / "liqingzhao_checkpoint_1050.t7"

_MODELS = {}


def model_of(name):
    """A loaded golden checkpoint (cached: loading is the slow part). sample() resets the
    states before and after, so sharing one instance between tests is safe."""
    if name not in _MODELS:
        _MODELS[name] = load_model(CHECKPOINTS / f"{name}.t7")
    return _MODELS[name]


def golden_cases():
    """(checkpoint, settings, file) for every golden sample; the settings are read from the
    file name as the README describes them."""
    cases = []
    for path in sorted(SAMPLES.glob("*.txt")):
        match = re.fullmatch(r"(\w+_cp_\d+)_(argmax_nostart|argmax_start|"
                             r"t([0-9.]+)_seed(\d+)_afternn(_start)?)", path.stem)
        assert match, f"unexpected golden sample name {path.name}"
        checkpoint, kind, temperature, seed, seeded_start = match.groups()
        if kind.startswith("argmax"):
            settings = dict(sample=False, temperature=1.0, seed=None,
                            start_text=START if kind == "argmax_start" else "")
        else:
            settings = dict(sample=True, temperature=float(temperature), seed=int(seed),
                            start_text=START if seeded_start else "")
        cases.append(pytest.param(checkpoint, settings, path, id=path.stem))
    return cases


GOLDEN_CASES = golden_cases()


def read_golden(path):
    return path.read_bytes().decode("utf-8")      # no newline translation


def test_every_golden_sample_is_covered():
    names = {case.id for case in GOLDEN_CASES}
    # the README's list: argmax with/without start text; seeded at 0.8 with/without start
    # text and at 1; for both the LSTM and the vanilla RNN checkpoints
    assert {"lstm_small_cp_159_argmax_nostart", "lstm_small_cp_159_argmax_start",
            "lstm_small_cp_159_t0.8_seed123_afternn",
            "lstm_small_cp_159_t0.8_seed123_afternn_start",
            "lstm_small_cp_159_t1_seed123_afternn", "rnn_small_cp_159_argmax_nostart",
            "rnn_small_cp_159_t1_seed123_afternn"} <= names
    for case in GOLDEN_CASES:
        assert len(read_golden(case.values[2])) == GOLDEN_LENGTH


@pytest.mark.parametrize("checkpoint, settings, path", GOLDEN_CASES)
def test_model_sample_reproduces_golden(checkpoint, settings, path):
    expected = read_golden(path)
    model = model_of(checkpoint)
    text = model.sample(GOLDEN_LENGTH, **settings)
    assert text == expected
    if settings["start_text"]:
        assert text.startswith(settings["start_text"])


@pytest.mark.parametrize("checkpoint, settings, path", GOLDEN_CASES)
def test_command_reproduces_golden(checkpoint, settings, path, capsys):
    argv = ["-checkpoint", str(CHECKPOINTS / f"{checkpoint}.t7"), "-length", "300",
            "-gpu", "-1", "-sample", "1" if settings["sample"] else "0",
            "-temperature", str(settings["temperature"])]
    if settings["start_text"]:
        argv += ["-start_text", settings["start_text"]]
    if settings["seed"] is not None:
        argv += ["-seed", str(settings["seed"])]
    assert sample_cli.main(argv) == 0
    out, err = capsys.readouterr()
    assert out == read_golden(path) + "\n"
    assert err == ""


def test_argmax_ignores_the_seed():
    model = model_of("lstm_small_cp_159")
    expected = read_golden(SAMPLES / "lstm_small_cp_159_argmax_start.txt")
    for seed in (None, 1, 99):
        assert model.sample(GOLDEN_LENGTH, START, sample=False, seed=seed) == expected


# -- the numpy stepper against the model's forward ----------------------------------------

def _stream_ids(model, K, T):
    """K different token streams of length T, from the golden text at different offsets."""
    text = (GOLDEN / "shakespeare200k.txt").read_bytes().decode("utf-8")
    rows = [model.encode(text[1000 * k + 17 * k: 1000 * k + 17 * k + T]) for k in range(K)]
    ids = torch.stack(rows)
    assert not torch.equal(ids[0], ids[1]) and not torch.equal(ids[1], ids[2])
    return ids


@pytest.mark.parametrize("name, v1_dropout", [
    ("lstm_small_cp_159", False), ("rnn_small_cp_159", False),
    ("lstm_bn_dropout_cp_159", False), ("lstm_bn_dropout_cp_159", True)])
def test_numpy_stepper_matches_forward(name, v1_dropout):
    model = load_model(CHECKPOINTS / f"{name}.t7")     # own copy: v1_dropout changes it
    if v1_dropout:                                    # old checkpoints: eval output * (1-p)
        for dropout in model.dropouts:
            dropout.v2 = False
    model.eval()
    K, T0, T1 = 3, 20, 40
    ids = _stream_ids(model, K, T0 + T1)
    with torch.no_grad():
        model.reset_states()
        full = model(ids).numpy()                     # (K, T0+T1, V), whole sequence
        model.reset_states()
        model(ids[:, :T0])                            # the start text; states remembered
    stepper = NumpyStepper(model, K)
    for t in range(T1):
        scores = stepper.step(ids[:, T0 + t].numpy())
        assert scores.shape == (K, model.vocab_size)
        np.testing.assert_allclose(scores, full[:, T0 + t], rtol=0, atol=1e-5)
    # the K streams really are different (a stepper that mixed them up would fail above)
    assert np.abs(full[0, -1] - full[1, -1]).max() > 1e-2
    model.reset_states()


def test_numpy_stepper_from_zero_state_matches_forward():
    model = model_of("lstm_small_cp_159")
    ids = _stream_ids(model, 3, 15)
    with torch.no_grad():
        model.reset_states()
        full = model(ids).numpy()
        model.reset_states()
    stepper = NumpyStepper(model, 3)
    for t in range(ids.shape[1]):
        np.testing.assert_allclose(stepper.step(ids[:, t].numpy()), full[:, t],
                                   rtol=0, atol=1e-5)


# -- temperature ---------------------------------------------------------------------------

@pytest.mark.parametrize("temperature", [1.0, 0.8, 0.5, 2.0, 1.7])
def test_torch7_probabilities_normal_temperatures(temperature):
    rng = np.random.default_rng(0)
    scores = (rng.standard_normal((4, 62)) * 3).astype(np.float32)
    probs = torch7_probabilities(scores, temperature)
    assert probs.dtype == np.float64 and probs.shape == scores.shape
    # sample.lua: probs = exp(scores / T) in double (division in the scores' float type)
    scaled = (scores / np.float32(temperature)).astype(np.float64)
    expected = np.exp(scaled) / np.exp(scaled).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs, expected, rtol=1e-12, atol=0)
    # and, more loosely, the exact float64 softmax of s / T
    exact = np.exp(scores.astype(np.float64) / temperature)
    np.testing.assert_allclose(probs, exact / exact.sum(axis=1, keepdims=True), rtol=1e-5)


def test_torch7_probabilities_low_temperature_does_not_overflow():
    rng = np.random.default_rng(1)
    scores = (rng.standard_normal((3, 62)) * 3).astype(np.float32)
    scores[:, 5] += 1.0                                # a clear maximum in every row
    temperature = 1e-4
    with np.errstate(over="ignore", invalid="ignore"):
        plain = np.exp(scores.astype(np.float64) / temperature)
        plain = plain / plain.sum(axis=1, keepdims=True)
    assert not np.isfinite(plain).all()               # the original's formula breaks here
    probs = torch7_probabilities(scores, temperature)
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert (probs.argmax(axis=1) == scores.argmax(axis=1)).all()
    assert (probs.max(axis=1) > 0.999).all()          # essentially the argmax


def test_very_low_temperature_samples_the_argmax_text():
    # the original crashes here ("invalid multinomial distribution"); ours samples, and at
    # T = 1e-4 the distribution is so peaked that the sample is the argmax text
    model = model_of("lstm_small_cp_159")
    text = model.sample(GOLDEN_LENGTH, START, sample=True, temperature=1e-4, seed=3)
    assert text == read_golden(SAMPLES / "lstm_small_cp_159_argmax_start.txt")


@pytest.mark.parametrize("temperature", [1e-40, 1e-50, 1e-300, 5e-324])
def test_vanishing_temperature_is_the_argmax(temperature):
    # scores / T overflows float32 (1e-40 is a float32 denormal; 1e-50 rounds to 0 in
    # float32): the limit is the argmax, not inf - inf = NaN ("MFFFF...")
    model = model_of("lstm_small_cp_159")
    text = model.sample(GOLDEN_LENGTH, START, sample=True, temperature=temperature, seed=3)
    assert text == read_golden(SAMPLES / "lstm_small_cp_159_argmax_start.txt")


def test_torch7_probabilities_vanishing_temperature_is_one_hot():
    rng = np.random.default_rng(2)
    scores = (rng.standard_normal((3, 62)) * 3).astype(np.float32)
    scores[1, 9] = scores[1].max() + 1e-3             # a maximum by a hair
    probs = torch7_probabilities(scores, 1e-40)
    np.testing.assert_array_equal(probs, np.eye(62)[scores.argmax(axis=1)])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_torch7_probabilities_refuses_non_finite_scores(bad):
    scores = np.zeros((2, 10), dtype=np.float32)
    scores[1, 4] = bad
    with pytest.raises(NonFiniteScores):
        torch7_probabilities(scores, 0.9)


@pytest.mark.parametrize("sample", [True, False])
def test_scores_turning_non_finite_mid_sample_are_refused(sample, monkeypatch):
    # finite weights, NaN scores from the 5th step on (as a numeric overflow would give)
    model = model_of("lstm_small_cp_159")
    real_step = NumpyStepper.step
    calls = []

    def step(self, ids):
        scores = real_step(self, ids)
        calls.append(1)
        if len(calls) >= 5:
            scores[0, 3] = np.nan
        return scores

    monkeypatch.setattr(NumpyStepper, "step", step)
    made = []
    with pytest.raises(NonFiniteScores, match="at token 6"):
        for ids in sample_ids(model, 50, sample=sample, generator=TorchGenerator(1)):
            made.append(ids)
    assert len(made) == 5


def test_non_finite_temperature_is_refused_by_the_library():
    model = model_of("lstm_small_cp_159")
    for temperature in (float("nan"), float("inf"), 0.0):
        with pytest.raises(TorchRNNError, match="temperature"):
            model.sample(10, temperature=temperature, seed=1)


# -- streams, seeds ------------------------------------------------------------------------

def test_sample_stream_joins_to_sample():
    model = model_of("lstm_small_cp_159")
    expected = read_golden(SAMPLES / "lstm_small_cp_159_t0.8_seed123_afternn_start.txt")
    stream = model.sample_stream(GOLDEN_LENGTH, START, temperature=0.8, seed=123)
    assert iter(stream) is stream                     # a generator, not a finished list
    first = next(stream)
    pieces = [first] + list(stream)
    assert len(pieces) == GOLDEN_LENGTH               # one piece per token
    assert "".join(pieces) == expected
    assert "".join(model.sample_stream(100, seed=9)) == model.sample(100, seed=9)


def test_num_samples_streams():
    model = model_of("lstm_small_cp_159")
    texts = model.sample(120, seed=5, num_samples=3)
    assert isinstance(texts, list) and len(texts) == 3
    assert all(len(t) == 120 for t in texts)
    assert model.sample(120, seed=5, num_samples=3) == texts          # reproducible
    assert len(set(texts)) == 3                                        # independent
    assert model.sample(120, seed=6, num_samples=3) != texts
    # From uniform first scores each stream's first token is one multinomial draw over V
    # equal probabilities: the first token j (1-based) with j / V >= u, one uniform per
    # stream, in stream order.
    V = model.vocab_size
    u = TorchGenerator(5).uniform(3)
    first = [model.idx_to_token[int(np.ceil(x * V))] for x in u]
    assert [t[0] for t in texts] == first
    # with start text every stream begins with it
    started = model.sample(60, START, seed=5, num_samples=3)
    assert all(t.startswith(START) and len(t) == 60 for t in started)
    assert len(set(started)) == 3


def test_num_samples_argmax_streams_are_identical():
    model = model_of("lstm_small_cp_159")
    expected = read_golden(SAMPLES / "lstm_small_cp_159_argmax_nostart.txt")
    texts = model.sample(GOLDEN_LENGTH, sample=False, num_samples=3)
    assert texts == [expected] * 3


def test_seed_reproduces_and_different_seeds_differ():
    model = model_of("rnn_small_cp_159")
    a = model.sample(200, seed=11)
    assert model.sample(200, seed=11) == a
    assert model.sample(200, seed=12) != a
    assert model.sample(200, generator=TorchGenerator(11)) == a


def test_no_seed_differs_between_runs():
    model = model_of("rnn_small_cp_159")
    assert model.sample(200) != model.sample(200)


def test_length_counts_start_text_and_argmax_prefix():
    model = model_of("lstm_small_cp_159")
    golden = read_golden(SAMPLES / "lstm_small_cp_159_argmax_start.txt")
    for length in (len(START), len(START) + 1, 50):
        assert model.sample(length, START, sample=False) == golden[:length]


def test_length_shorter_than_start_text_is_an_error():
    model = model_of("lstm_small_cp_159")
    with pytest.raises((TorchRNNError, ValueError), match=r"start text"):
        model.sample(len(START) - 1, START, seed=1)


def test_unknown_start_character_names_it():
    model = model_of("lstm_small_cp_159")
    with pytest.raises(TorchRNNError, match=r"'§'"):
        model.sample(50, "To be§", seed=1)


# -- non-ASCII vocabularies ----------------------------------------------------------------

@pytest.fixture(scope="module")
def chinese():
    return load_model(CHINESE)


def test_chinese_start_text(chinese):
    assert chinese.vocab_size == 1037
    tokens = [chinese.idx_to_token[i] for i in range(1, 7)]
    start = "".join(tokens)                          # characters of its own vocabulary
    assert all(ord(c) > 127 for c in start)
    text = chinese.sample(40, start, seed=2)
    assert text.startswith(start)
    assert len(text) == 40                           # one character per token here
    vocabulary = set(chinese.idx_to_token.values())
    assert all(c in vocabulary for c in text)
    assert chinese.sample(40, start, seed=2) == text


def test_chinese_start_text_through_the_command(chinese, capsys):
    start = "".join(chinese.idx_to_token[i] for i in (3, 4, 5))
    argv = ["-checkpoint", str(CHINESE), "-length", "20", "-gpu", "-1",
            "-start_text", start, "-seed", "4"]
    assert sample_cli.main(argv) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.endswith("\n") and out.startswith(start)
    assert out[:-1] == chinese.sample(20, start, seed=4)


def test_torch_stepper_agrees_with_numpy_stepper():
    # the GPU path (the model's own forward, one step at a time), run here on the CPU
    from torchrnn_py.sampling import TorchStepper
    model = load_model(str(GOLDEN / "checkpoints" / "lstm_bn_dropout_cp_159.t7"))
    model.reset_states()
    numpy_stepper = NumpyStepper(model, 3)
    torch_stepper = TorchStepper(model)
    for ids in ([1, 2, 3], [5, 5, 5], [9, 1, 40]):
        ids = np.array(ids, dtype=np.int64)
        expected = numpy_stepper.step(ids).copy()
        assert np.allclose(torch_stepper.step(ids), expected, atol=2e-5)
    model.reset_states()
