"""LanguageModel against the original: forward passes of real torch-rnn checkpoints computed
by Torch7 (golden/forward), and seeded initialisation that gives the original's first loss."""
import json
import re

import h5py
import numpy as np
import pytest
import torch

from conftest import GOLDEN
from torchrnn_py import checkpoint
from torchrnn_py.criterion import torch7_loss_value
from torchrnn_py.data import DataLoader
from torchrnn_py.model import LanguageModel, to_index, to_token_id
from torchrnn_py.rng import TorchGenerator
from torchrnn_py.vocab import read_vocab

CHECKPOINTS = ["lstm_small_cp_159", "rnn_small_cp_159", "lstm_bn_dropout_cp_159"]
H5 = GOLDEN / "shakespeare200k.h5"
JSON = GOLDEN / "shakespeare200k.json"


def _forward_ref(name):
    with h5py.File(GOLDEN / "forward" / f"{name}.h5", "r") as f:
        return {k: f[k][()] for k in f}


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_forward_float_matches_torch7(name):
    ref = _forward_ref(name)
    model = checkpoint.load_model(GOLDEN / "checkpoints" / f"{name}.t7")
    assert not model.training
    assert next(model.parameters()).dtype == torch.float32
    with torch.no_grad():
        scores = model(torch.from_numpy(ref["input"]))
        scores_cont = model(torch.from_numpy(ref["input_cont"]))   # states carried over
    assert scores.dtype == torch.float32
    np.testing.assert_allclose(scores.numpy(), ref["scores"], rtol=0, atol=2e-5)
    np.testing.assert_allclose(scores_cont.numpy(), ref["scores_cont"], rtol=0, atol=2e-5)
    probs = torch.softmax(scores.double(), -1).numpy()
    probs_cont = torch.softmax(scores_cont.double(), -1).numpy()
    np.testing.assert_allclose(probs, ref["probs"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(probs_cont, ref["probs_cont"], rtol=0, atol=1e-5)

    # without the carried-over state the continuation is different: the test above
    # really checks that states are remembered between calls
    model.reset_states()
    with torch.no_grad():
        restarted = model(torch.from_numpy(ref["input_cont"]))
    assert np.abs(restarted.numpy() - ref["scores_cont"]).max() > 1e-3


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_forward_double_matches_torch7(name):
    ref = _forward_ref(name)
    model = checkpoint.load_model(GOLDEN / "checkpoints" / f"{name}.t7").double()
    model.reset_states()
    with torch.no_grad():
        scores = model(torch.from_numpy(ref["input"]))
        scores_cont = model(torch.from_numpy(ref["input_cont"]))
    assert scores.dtype == torch.float64
    np.testing.assert_allclose(scores.numpy(), ref["double_scores"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(scores_cont.numpy(), ref["double_scores_cont"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(torch.softmax(scores, -1).numpy(), ref["double_probs"],
                               rtol=0, atol=1e-12)


def test_forward_metadata_matches_checkpoint():
    for name in CHECKPOINTS:
        meta = json.loads((GOLDEN / "forward" / f"{name}.json").read_text())
        model = checkpoint.load_model(GOLDEN / "checkpoints" / f"{name}.t7")
        assert model.vocab_size == meta["vocab_size"]
        assert model.model_type == meta["model_type"]
        assert model.rnn_size == meta["rnn_size"]
        assert model.num_layers == meta["num_layers"]
        assert model.wordvec_dim == meta["wordvec_dim"]
        ref = _forward_ref(name)
        # 'text' is the decoded input; our decode gives it back
        assert model.decode(torch.from_numpy(ref["input"][0])) == meta["text"]


# -- seeded initialisation ----------------------------------------------------------------

def _golden_first_loss():
    for line in (GOLDEN / "train" / "lstm_seed7.log").read_text().splitlines():
        m = re.search(r"i = 1 / \d+, loss = ([0-9.]+)", line)
        if m:
            return m.group(1)
    raise AssertionError("no first loss in lstm_seed7.log")


def _golden_model(generator, batchnorm=0):
    vocab = read_vocab(JSON)
    return LanguageModel(vocab, "lstm", wordvec_size=32, rnn_size=64, num_layers=2,
                         dropout=0, batchnorm=batchnorm, generator=generator)


def test_seed7_first_loss_equals_original():
    model = _golden_model(TorchGenerator(7))
    loader = DataLoader(H5, 20, 50)
    x, y = loader.next_batch("train")
    model.train()
    scores = model(x)
    assert scores.shape == (20, 50, 62)
    first = _golden_first_loss()
    assert first == "4.139461"
    assert "%f" % torch7_loss_value(scores, y) == first
    # the ordinary mean cross-entropy is the same number to float precision
    assert abs(model.loss(scores, y).item() - float(first)) < 1e-5


def _box_muller_stream(gen):
    """Normals from raw uniforms as the golden README describes (with a cache)."""
    cache = []

    def normal(n, std):
        out = []
        while len(out) < n:
            if cache:
                x, rho = cache.pop()
                out.append(rho * np.sin(2 * np.pi * x))
            else:
                x, y = gen.uniform(2)
                rho = np.sqrt(-2.0 * np.log(1.0 - y))
                out.append(rho * np.cos(2 * np.pi * x))
                cache.append((x, rho))
        return np.array(out) * std
    return normal


@pytest.mark.parametrize("batchnorm", [0, 1])
def test_seeded_init_draws_in_torch7_order(batchnorm):
    V, D, H, L = 62, 32, 64, 2
    model = _golden_model(TorchGenerator(7), batchnorm=batchnorm)
    gen = TorchGenerator(7)
    normal = _box_muller_stream(gen)

    def f32(values, shape):
        return torch.from_numpy(np.asarray(values, dtype=np.float64)).float().view(*shape)

    expected = {"embedding.weight": f32(normal(V * D, 1.0), (V, D))}
    for layer in range(L):
        Din = D if layer == 0 else H
        expected[f"rnns.{layer}.weight"] = f32(normal((Din + H) * 4 * H, 1 / np.sqrt(Din + H)),
                                              (Din + H, 4 * H))
        bias = torch.zeros(4 * H)
        bias[H:2 * H] = 1
        expected[f"rnns.{layer}.bias"] = bias
        if batchnorm:
            expected[f"batchnorms.{layer}.weight"] = f32(gen.uniform(H), (H,))
            expected[f"batchnorms.{layer}.bias"] = torch.zeros(H)
    bound = 1 / np.sqrt(H)
    expected["linear.weight"] = f32(-bound + 2 * bound * gen.uniform(V * H), (V, H))
    expected["linear.bias"] = f32(-bound + 2 * bound * gen.uniform(V), (V,))

    params = dict(model.named_parameters())
    assert set(params) == set(expected)
    for name, value in expected.items():
        torch.testing.assert_close(params[name].detach(), value, rtol=0, atol=0, msg=name)


def test_unseeded_models_differ():
    a = _golden_model(None)
    b = _golden_model(None)
    assert not torch.equal(a.embedding.weight, b.embedding.weight)


# -- vocabulary and states ----------------------------------------------------------------

def test_encode_decode_round_trip():
    model = _golden_model(TorchGenerator(1))
    data = json.loads(JSON.read_text())
    text = "First Citizen:\nBefore we proceed"
    ids = model.encode(text)
    assert ids.dtype == torch.int64
    assert ids.tolist() == [data["token_to_idx"][c] for c in text]
    assert model.decode(ids) == text
    assert model.idx_to_token[1] == data["idx_to_token"]["1"]
    assert to_token_id(to_index(ids)).tolist() == ids.tolist()
    assert to_index(torch.tensor([1, 62])).tolist() == [0, 61]


def test_reset_states():
    model = _golden_model(TorchGenerator(3))
    model.eval()
    x = model.encode("To be, or not to be").view(1, -1)
    with torch.no_grad():
        first = model(x)
        second = model(x)            # continues from the first pass's final state
        model.reset_states()
        third = model(x)
    assert not torch.allclose(first, second)
    torch.testing.assert_close(third, first, rtol=0, atol=0)


def test_forward_shapes_and_loss_is_mean_cross_entropy():
    model = _golden_model(TorchGenerator(4))
    x = torch.randint(1, 63, (3, 7))
    y = torch.randint(1, 63, (3, 7))
    scores = model(x)
    assert scores.shape == (3, 7, 62)
    logp = torch.log_softmax(scores.double(), -1)
    expected = -logp.gather(2, (y - 1).unsqueeze(-1)).mean()
    assert model.loss(scores, y).item() == pytest.approx(expected.item(), abs=1e-5)


def test_model_rejects_bad_arguments():
    vocab = read_vocab(JSON)
    with pytest.raises(ValueError):
        LanguageModel(vocab, "transformer")
    with pytest.raises(ValueError):
        LanguageModel(vocab, "lstm", dropout=1)
