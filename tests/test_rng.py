"""TorchGenerator reproduces Torch7's generator: every value recorded from real Torch7
(tests/fixtures/golden/rng) after ``torch.manualSeed(123)``."""
import copy
import json
import re

import numpy as np
import pytest

from conftest import GOLDEN
from torchrnn_py.rng import TorchGenerator

RNG_DIR = GOLDEN / "rng"


def _num(value):
    """Values are JSON numbers (integers) or exact %.17g strings."""
    return float(value) if isinstance(value, str) else value


@pytest.fixture(scope="module")
def ref():
    with open(RNG_DIR / "rng_reference.json") as f:
        data = json.load(f)
    return data


@pytest.fixture(scope="module")
def txt():
    """The sections of rng_reference.txt, parsed independently of the JSON."""
    text = (RNG_DIR / "rng_reference.txt").read_text()
    sections = {}
    current = None
    for line in text.splitlines():
        head = re.match(r"^([A-Z]\d?)\) ", line)
        if head:
            current = head.group(1)
            sections[current] = {"header": line, "lines": []}
        elif current and line.strip():
            sections[current]["lines"].append(line.strip())
    return sections


def test_reference_files_agree_with_each_other(ref, txt):
    # The two files are two views of the same Torch7 run; check we read both right.
    assert [float(v) for v in txt["B"]["lines"]] == [_num(v) for v in ref["seed123_uniform_10"]]
    raws = [int(line.split()[0]) for line in txt["B2"]["lines"]]
    assert raws == ref["seed123_random_raw_10"]
    assert [int(v) for v in txt["A"]["lines"][0].split()] == ref["seed123_multinomial_20"]


def test_random_raw(ref, txt):
    gen = TorchGenerator(123)
    raws = [int(v) for v in gen.random(10)]
    assert raws == ref["seed123_random_raw_10"]
    # B2 also states uniform() == random()/2^32
    for line in txt["B2"]["lines"]:
        raw = line.split()[0]
        value = line.split("=")[1].strip()
        assert int(raw) / 2 ** 32 == float(value)


def test_random_scalar_draws(ref):
    gen = TorchGenerator(123)
    assert [gen.random() for _ in range(10)] == ref["seed123_random_raw_10"]


def test_uniform_scalar(ref):
    gen = TorchGenerator(123)
    got = [gen.uniform() for _ in range(20)]
    assert got == [_num(v) for v in ref["seed123_uniform_20"]]
    gen = TorchGenerator(123)
    assert gen.uniform() == _num(ref["seed123_uniform_1"])


def test_uniform_tensor(ref):
    gen = TorchGenerator(123)
    got = gen.uniform(10)
    assert got.dtype == np.float64
    assert got.tolist() == [_num(v) for v in ref["seed123_uniform_10"]]
    gen = TorchGenerator(123)
    assert gen.uniform(20).tolist() == [_num(v) for v in ref["seed123_uniform_20"]]


def test_uniform_tensor_with_bounds(ref, txt):
    expected = [_num(v) for v in ref["seed123_DoubleTensor5_uniform_m05_05"]]
    assert expected == [float(v) for v in txt["C4"]["lines"]]
    gen = TorchGenerator(123)
    assert gen.uniform(5, -0.5, 0.5).tolist() == expected
    gen = TorchGenerator(123)
    assert [gen.uniform(None, -0.5, 0.5) for _ in range(5)] == expected


def test_normal_scalar(ref, txt):
    expected = np.array([_num(v) for v in ref["seed123_normal_scalar_5"]])
    np.testing.assert_array_equal(expected, [float(v) for v in txt["C"]["lines"]])
    gen = TorchGenerator(123)
    got = np.array([gen.normal() for _ in range(5)])
    np.testing.assert_allclose(got, expected, rtol=1e-15, atol=0)


def test_normal_tensor_double(ref):
    expected = np.array([_num(v) for v in ref["seed123_randn5_double"]])
    gen = TorchGenerator(123)
    np.testing.assert_allclose(gen.normal(5), expected, rtol=1e-15, atol=0)


def test_normal_float_tensor(ref, txt):
    # torch.FloatTensor(5):normal(0,1): drawn in double, stored as float32.
    expected = np.array([_num(v) for v in ref["seed123_FloatTensor5_normal"]], dtype=np.float64)
    np.testing.assert_array_equal(expected, [float(v) for v in txt["C3"]["lines"]])
    assert np.all(expected.astype(np.float32).astype(np.float64) == expected)
    gen = TorchGenerator(123)
    got = gen.normal(5, 0.0, 1.0).astype(np.float32)
    np.testing.assert_array_equal(got, expected.astype(np.float32))


def test_normal_mean_std():
    base = TorchGenerator(123).normal(6)
    scaled = TorchGenerator(123).normal(6, 2.0, 0.5)
    np.testing.assert_allclose(scaled, base * 0.5 + 2.0, rtol=1e-15, atol=1e-15)


def test_multinomial_sequence(ref, txt):
    probs = np.array([_num(v) for v in ref["multinomial_probs"]])
    np.testing.assert_array_equal(probs, [0.1, 0.2, 0.3, 0.15, 0.25])
    gen = TorchGenerator(123)
    got = [gen.multinomial(probs) + 1 for _ in range(20)]   # 0-based -> Torch's 1-based
    assert got == ref["seed123_multinomial_20"]


def test_multinomial_rows_draw_in_order(ref):
    probs = np.array([_num(v) for v in ref["multinomial_probs"]])
    gen = TorchGenerator(123)
    got = gen.multinomial(np.tile(probs, (20, 1)))
    assert (got + 1).tolist() == ref["seed123_multinomial_20"]


def test_multinomial_is_cumsum_search_on_uniforms(ref):
    # A2 of the txt: the index is the first j with cum[j] >= u; recompute from the uniforms.
    assert ref["multinomial_equals_uniform_reconstruction"] is True
    probs = np.array([_num(v) for v in ref["multinomial_probs"]])
    cum = np.cumsum(probs) / probs.sum()
    cum[-1] = 1.0
    uniforms = [_num(v) for v in ref["seed123_uniform_20"]]
    rebuilt = [int(np.argmax(cum >= u)) + 1 for u in uniforms]
    assert rebuilt == ref["seed123_multinomial_20"]


def test_multinomial_unnormalised_weights(ref):
    probs = np.array([_num(v) for v in ref["multinomial_probs"]]) * 7.0
    gen = TorchGenerator(123)
    got = [gen.multinomial(probs) + 1 for _ in range(20)]
    assert got == ref["seed123_multinomial_20"]


def test_seed_uses_low_32_bits(ref, txt):
    assert "D" in txt
    gen = TorchGenerator(2 ** 32 + 123)
    assert gen.uniform() == _num(ref["seed_2p32plus123_uniform_1"])
    assert _num(ref["seed_2p32plus123_uniform_1"]) == _num(ref["seed123_uniform_1"])


def test_box_muller_cache_across_calls_odd_counts(ref):
    expected = np.array([_num(v) for v in ref["seed123_normal_scalar_5"]])
    gen = TorchGenerator(123)
    got = np.concatenate([gen.normal(3), gen.normal(2)])
    np.testing.assert_array_equal(got, TorchGenerator(123).normal(5))
    np.testing.assert_allclose(got, expected, rtol=1e-15, atol=0)
    # 1 + 1 + 3 is the same stream as well
    gen = TorchGenerator(123)
    got = np.concatenate([[gen.normal()], gen.normal(1), gen.normal(3)])
    np.testing.assert_allclose(got, expected, rtol=1e-15, atol=0)
    # The cached second value uses only up the 4 uniforms of two pairs: the next uniform
    # after normal(3) + normal(1) is the 5th raw draw.
    gen = TorchGenerator(123)
    gen.normal(3)
    gen.normal(1)
    assert gen.uniform() == _num(ref["seed123_uniform_20"][4])


def test_manual_seed_clears_cache(ref):
    expected = _num(ref["seed123_normal_scalar_5"][0])
    gen = TorchGenerator(5)
    gen.normal()                      # leaves a cached value
    gen.manual_seed(123)
    assert gen.normal() == pytest.approx(expected, rel=1e-15, abs=0)


def test_state_round_trip_continues_stream():
    gen = TorchGenerator(99)
    gen.uniform(7)
    gen.normal(3)                     # odd: a Box-Muller value is cached
    state = copy.deepcopy(gen.get_state())
    first = (gen.normal(5), gen.uniform(4), gen.random(3))
    other = TorchGenerator(1)
    other.set_state(state)
    second = (other.normal(5), other.uniform(4), other.random(3))
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    # and restoring into the same generator rewinds it
    gen.set_state(state)
    np.testing.assert_array_equal(gen.normal(5), first[0])


def test_state_is_plain_data_and_survives_json():
    gen = TorchGenerator(42)
    gen.normal(1)
    state = gen.get_state()
    plain = json.loads(json.dumps({**state, "key": [int(k) for k in state["key"]]}))
    expected = gen.normal(4)
    restored = TorchGenerator(0)
    restored.set_state(plain)
    np.testing.assert_array_equal(restored.normal(4), expected)
    assert restored.initial_seed == 42


def test_set_state_rejects_garbage():
    gen = TorchGenerator(1)
    with pytest.raises(ValueError):
        gen.set_state({"seed": 1, "key": [1, 2, 3], "pos": 0})
