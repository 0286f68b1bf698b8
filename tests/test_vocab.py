"""Vocab: 1-based ids <-> tokens, greedy [N] tokens, byte vocabularies, the JSON file."""
import json
import time

import h5py
import numpy as np
import pytest
import torch

from conftest import GOLDEN, PREPROCESS
from torchrnn_py.errors import TorchRNNError
from torchrnn_py.vocab import Vocab, byte_token, byte_token_value, read_vocab, write_vocab


def bytes_vocab():
    """The vocabulary preprocess --encoding bytes makes for a file holding every byte."""
    return Vocab([byte_token(b) for b in range(256)])


# ----------------------------------------------------------------- basics

def test_ids_are_one_based():
    vocab = Vocab(["a", "b", "\n"])
    assert len(vocab) == vocab.size == 3
    assert vocab.idx_to_token == {1: "a", 2: "b", 3: "\n"}
    assert vocab.token_to_idx == {"a": 1, "b": 2, "\n": 3}
    assert Vocab({1: "a", 2: "b", 3: "\n"}) == vocab
    assert Vocab({"3": "\n", "1": "a", "2": "b"}) == vocab


def test_encode_returns_long_tensor_and_round_trips():
    vocab = Vocab(list("helo wrd\r\n") + ["\U0001F600", "\u0301"])
    text = "hello world\r\n\U0001F600e\u0301"
    ids = vocab.encode(text)
    assert isinstance(ids, torch.Tensor) and ids.dtype == torch.int64
    assert ids.tolist() == [vocab.token_to_idx[c] for c in text]
    assert min(ids.tolist()) >= 1
    assert vocab.decode(ids) == text
    assert vocab.decode(ids.tolist()) == text
    assert vocab.decode(ids.numpy().astype(np.int32)) == text
    assert vocab.encode("").tolist() == [] and vocab.decode([]) == ""


def test_round_trip_on_fixture_data():
    vocab = read_vocab(GOLDEN / "shakespeare200k.json")
    text = (GOLDEN / "shakespeare200k.txt").read_text(encoding="utf-8")
    with h5py.File(GOLDEN / "shakespeare200k.h5", "r") as f:
        train = f["train"][()]
    assert vocab.decode(train) == text[:len(train)]
    assert np.array_equal(vocab.encode(text[:len(train)]).numpy(), train.astype(np.int64))


def test_unknown_character_error_names_it():
    vocab = Vocab(list("abc"))
    with pytest.raises(TorchRNNError) as err:
        vocab.encode("abc\u00e9a")
    message = str(err.value)
    assert "'\u00e9'" in message and "U+00E9" in message and "position 3" in message
    with pytest.raises(TorchRNNError, match="U\\+1F600.*position 1"):
        vocab.encode("a\U0001F600")


def test_unknown_character_in_greedy_path():
    vocab = Vocab(["a", "[", "[200]"])
    with pytest.raises(TorchRNNError, match="'z' \\(U\\+007A\\) at position 6"):
        vocab.encode("a[200]z")


def test_greedy_longest_match_for_byte_tokens():
    vocab = Vocab(["a", "[", "2", "0", "]", "[200]", "[20]"])
    assert vocab.encode("a[200]").tolist() == [1, 6]
    assert vocab.encode("[20]").tolist() == [7]
    assert vocab.encode("[2[200]0]").tolist() == [2, 3, 6, 4, 5]
    assert vocab.encode("[0]").tolist() == [2, 4, 5]
    assert vocab.decode([1, 6, 7, 2]) == "a[200][20]["
    # Text without '[' goes the vectorised way and gives the same ids.
    assert vocab.encode("a20").tolist() == [1, 3, 4]


def test_decode_rejects_ids_outside_vocabulary():
    vocab = Vocab(list("ab"))
    for bad in ([1, 0], [3], [-1]):
        with pytest.raises(TorchRNNError, match="outside the vocabulary"):
            vocab.decode(bad)
    with pytest.raises(ValueError):
        vocab.decode(np.array([1.0, 2.0]))


def test_decode_is_vectorised():
    vocab = read_vocab(PREPROCESS / "li_qing_zhao.json")
    ids = np.random.default_rng(0).integers(1, len(vocab) + 1, 2_000_000)
    start = time.perf_counter()
    text = vocab.decode(torch.from_numpy(ids))
    assert time.perf_counter() - start < 1.0
    assert len(text) == len(ids) and text[:5] == "".join(vocab.idx_to_token[i] for i in ids[:5])
    multi = bytes_vocab()
    ids = np.random.default_rng(1).integers(1, 257, 1_000_000)
    start = time.perf_counter()
    assert len(multi.decode_bytes(ids)) == len(ids)
    multi.decode(ids)
    assert time.perf_counter() - start < 1.0


# ----------------------------------------------------------------- bytes

def test_byte_token_names():
    assert byte_token(65) == "A" and byte_token(127) == "\x7f" and byte_token(128) == "[128]"
    assert byte_token_value("[200]") == 200 and byte_token_value("[0]") == 0
    for other in ("[256]", "[007]", "[]", "[x]", "200", "a"):
        assert byte_token_value(other) is None


def test_is_bytes():
    assert bytes_vocab().is_bytes
    assert Vocab(["a", "\n", "[200]"]).is_bytes
    assert not Vocab(list("abc")).is_bytes            # ASCII only: both readings agree
    assert not Vocab(["\u00e9", "[200]"]).is_bytes    # a non-ASCII character: text
    assert not Vocab(["a", "[300]"]).is_bytes
    assert not Vocab(["a", "ab"]).is_bytes


def test_bytes_round_trip():
    vocab = bytes_vocab()
    data = bytes(range(256)) + b"\r\n\x00\xff"
    ids = vocab.encode_bytes(data)
    assert ids.dtype == torch.int64 and ids.tolist()[:3] == [1, 2, 3]
    assert vocab.decode_bytes(ids) == data
    assert vocab.decode_bytes(ids.numpy()) == data
    # Text for a byte vocabulary names the high bytes.
    assert vocab.decode([66, 201]) == "A[200]"
    assert vocab.encode("A[200]").tolist() == [66, 201]


def test_bytes_of_a_latin1_text_vocabulary():
    vocab = Vocab(["a", "\u00e9", "\u00ff"])
    assert vocab.decode_bytes([1, 2, 3]) == b"a\xe9\xff"
    assert vocab.encode_bytes(b"\xffa").tolist() == [3, 1]


def test_bytes_errors():
    with pytest.raises(TorchRNNError, match="not a byte vocabulary.*'\u4e2d'"):
        Vocab(["a", "\u4e2d"]).decode_bytes([1])
    with pytest.raises(TorchRNNError, match="0xC8 \\(200\\) at offset 1"):
        Vocab(["a", "[201]"]).encode_bytes(b"a\xc8")


# --------------------------------------------------------------- the JSON

def test_read_fixture_vocabularies():
    li = read_vocab(PREPROCESS / "li_qing_zhao.json")
    data = json.loads((PREPROCESS / "li_qing_zhao.json").read_text())
    assert len(li) == 1037 and li.idx_to_token[1] == "\u5e38"
    assert li.token_to_idx == data["token_to_idx"]
    assert not li.is_bytes
    shakespeare = read_vocab(GOLDEN / "shakespeare200k.json")
    assert len(shakespeare) == 62 and shakespeare.idx_to_token[12] == "\n"


def test_write_then_read(tmp_path):
    vocab = Vocab(["a", "\u00e9", "\U0001F600", "[200]", "\n"])
    path = tmp_path / "v.json"
    write_vocab(path, vocab)
    raw = path.read_bytes()
    assert raw.isascii()
    assert raw.decode() == json.dumps(vocab.to_json())
    assert json.loads(raw)["idx_to_token"]["3"] == "\U0001F600"
    assert read_vocab(path) == vocab


def test_write_matches_preprocess_json(tmp_path):
    vocab = read_vocab(GOLDEN / "shakespeare200k.json")
    write_vocab(tmp_path / "v.json", vocab)
    assert (tmp_path / "v.json").read_bytes() == (GOLDEN / "shakespeare200k.json").read_bytes()


def test_read_accepts_lists_and_token_to_idx_only(tmp_path):
    path = tmp_path / "v.json"
    path.write_text(json.dumps({"idx_to_token": ["x", "y"]}))
    assert read_vocab(path).tokens == ("x", "y")
    path.write_text(json.dumps({"token_to_idx": {"y": 2, "x": 1.0}}))
    assert read_vocab(path).tokens == ("x", "y")


BROKEN = {
    "not_json": (b"{not json", "not valid JSON"),
    "not_utf8": (b'{"idx_to_token": {"1": "\xff"}}', "not UTF-8"),
    "not_an_object": (b"[1, 2]", "expected a JSON object"),
    "missing_keys": (b'{"vocab": {}}', "no 'idx_to_token'"),
    "empty": (b'{"idx_to_token": {}, "token_to_idx": {}}', "empty"),
    "gap": (b'{"idx_to_token": {"1": "a", "3": "b"}}', "not contiguous"),
    "zero_id": (b'{"idx_to_token": {"0": "a", "1": "b"}}', "ids start at 1"),
    "bad_key": (b'{"idx_to_token": {"one": "a"}}', "not a positive integer"),
    "non_string_token": (b'{"idx_to_token": {"1": 5}}', "non-empty string"),
    "duplicate_token": (b'{"idx_to_token": {"1": "a", "2": "a"}}', "appears twice"),
    "disagree": (b'{"idx_to_token": {"1": "a", "2": "b"}, "token_to_idx": {"a": 2, "b": 1}}',
                 "disagree"),
    "bad_idx_type": (b'{"token_to_idx": {"a": "1"}}', "positive integer"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_read_broken_vocabularies(tmp_path, name):
    content, expected = BROKEN[name]
    path = tmp_path / f"{name}.json"
    path.write_bytes(content)
    with pytest.raises(TorchRNNError) as err:
        read_vocab(path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_read_missing_file(tmp_path):
    with pytest.raises(TorchRNNError, match="not found"):
        read_vocab(tmp_path / "nope.json")
    with pytest.raises(TorchRNNError, match="directory"):
        read_vocab(tmp_path)


def test_vocabulary_of_only_byte_tokens_encodes_and_rejects_cleanly():
    vocab = Vocab({1: "[200]", 2: "[201]"})
    assert vocab.encode("[201][200]").tolist() == [2, 1]
    with pytest.raises(TorchRNNError, match="not in the vocabulary"):
        vocab.encode("a")


def test_model_token_map_same_subset_and_unknown():
    from torchrnn_py.vocab import model_token_map
    model = Vocab(list("abcde"))
    assert model_token_map(Vocab(list("abcde")), model, "d.json", "m.t7") is None
    ids = model_token_map(Vocab(list("eca")), model, "d.json", "m.t7")
    assert ids.tolist() == [0, 5, 3, 1]                    # ids[data_id] == model_id
    with pytest.raises(TorchRNNError) as err:
        model_token_map(Vocab(list("axbyz")), model, "d.json", "m.t7")
    message = str(err.value)
    assert message.startswith("d.json: ") and "m.t7" in message
    assert "3 of its 5 tokens" in message and "'x', 'y', 'z'" in message
