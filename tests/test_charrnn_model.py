"""char-rnn checkpoints as LanguageModels (tests/fixtures/charrnn, made by the real char-rnn on
Torch7): the model read from each file's wiring agrees with char-rnn's own step-by-step
forward dumps, and a graph that computes something else is refused in one line."""
import functools
import random

import h5py
import numpy as np
import pytest
import torch

from torchrnn_py.charrnn import load_charrnn
from torchrnn_py.charrnn.checkpoint import charrnn_from_t7
from torchrnn_py.errors import TorchRNNError
from torchrnn_py.t7 import TorchObject, read_t7

from conftest import FIXTURES

CHARRNN = FIXTURES / "charrnn"
NAMES = ["lstm_2x64", "rnn_2x64", "lstm_2x48_dropout0.5", "gru_2x64"]


@functools.lru_cache(maxsize=None)
def _dump(name):
    with h5py.File(CHARRNN / f"{name}.forward.h5", "r") as f:
        return {key: f[key][()] for key in f}


def _forward(model, ids):
    """char-rnn's outputs at each step from a zero state: log-probs (T, V), states (T, S, H)
    in char-rnn's order (c_1, h_1, ... for the LSTM; h_1, ... otherwise)."""
    model.reset_states()
    logprobs, states = [], []
    with torch.no_grad():
        for token in ids:
            scores = model(torch.tensor([[int(token)]]))[0, 0]
            logprobs.append(torch.log_softmax(scores.double(), -1))
            step = []
            for state in model.get_states():
                step += [state[1], state[0]] if model.model_type == "lstm" else [state[0]]
            states.append(torch.cat(step).double())
    model.reset_states()
    return torch.stack(logprobs), torch.stack(states)


@pytest.mark.parametrize("name", NAMES)
def test_forward_agrees_with_charrnn_dump_in_float64(name):
    dump = _dump(name)
    ck = load_charrnn(CHARRNN / f"{name}.t7")
    assert ck.model.linear.weight.dtype == torch.float64 and not ck.model.training
    # the byte-level vocabulary: id i is the byte vocab[i-1], and the dump's ids are ours
    assert ck.vocab.decode_bytes(np.arange(1, ck.vocab.size + 1)) == bytes(dump["vocab"])
    assert ck.vocab.encode_bytes(bytes(dump["text"])).tolist() == dump["input"].tolist()
    logprobs, states = _forward(ck.model, dump["input"])
    assert torch.allclose(logprobs, torch.from_numpy(dump["logprobs"]), rtol=0, atol=1e-10)
    T, S, H = dump["states"].shape
    assert torch.allclose(states.view(T, S, H), torch.from_numpy(dump["states"]),
                          rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", ["lstm_2x64", "gru_2x64"])
def test_forward_in_float32_agrees_to_1e5(name):
    dump = _dump(name)
    model = load_charrnn(CHARRNN / f"{name}.t7").model.float()
    logprobs, _ = _forward(model, dump["input"][:80])
    assert torch.allclose(logprobs, torch.from_numpy(dump["logprobs"][:80]), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_one_pass_equals_step_by_step(name):
    """The fused kernels over the whole text give what one step at a time gives."""
    dump = _dump(name)
    model = load_charrnn(CHARRNN / f"{name}.t7").model
    model.reset_states()
    with torch.no_grad():
        scores = model(torch.from_numpy(dump["input"]).view(1, -1))[0]
    assert torch.allclose(torch.log_softmax(scores, -1), torch.from_numpy(dump["logprobs"]),
                          rtol=0, atol=1e-10)


def test_fields_of_the_checkpoint():
    ck = load_charrnn(CHARRNN / "lstm_2x48_dropout0.5.t7")
    assert (ck.model_type, ck.i, ck.epoch) == ("lstm", 380, 2)
    assert ck.opt["savefile"] == "lstm_2x48_dropout0.5" and ck.opt["rnn_size"] == 48
    assert len(ck.train_losses) == 380 and ck.val_losses == {380: ck.val_loss}
    assert round(ck.val_loss, 4) == 2.3166
    model = ck.model
    assert (model.num_layers, model.rnn_size, model.wordvec_dim, model.dropout) == \
        (2, 48, 62, 0.5)
    assert all(d.v2 for d in model.dropouts)


def _graph_nodes(root):
    fn = root["protos"]["rnn"]["forwardnodes"]
    return [fn[i]["data"] for i in range(1, len(fn) + 1)]


def _refusal(root, tmp_path):
    with pytest.raises(TorchRNNError) as info:
        charrnn_from_t7(root, "variant.t7")
    message = str(info.value)
    assert message.startswith("variant.t7: not a usable char-rnn checkpoint") \
        and "\n" not in message
    return message


def test_a_graph_computing_another_function_is_refused(tmp_path):
    """A fork's variant with char-rnn's wiring but another nonlinearity: run, compared,
    refused (the model built from the wiring would sample something else)."""
    root = read_t7(CHARRNN / "rnn_2x64.t7")
    (tanh, *_) = [d for d in _graph_nodes(root)
                  if "module" in d and d["module"].class_name == "nn.Tanh"]
    tanh["module"].class_name = "nn.Sigmoid"
    assert "does not compute char-rnn's rnn" in _refusal(root, tmp_path)


def test_gates_taken_in_another_order_are_caught_by_running_the_graph(tmp_path):
    """A variant whose LSTM takes its gates in another order has char-rnn's wiring of
    Linears and shapes: only running the graph sees that it computes another function."""
    root = read_t7(CHARRNN / "lstm_2x64.t7")
    gate_selects = [d for d in _graph_nodes(root)
                    if "selectindex" in d and "module" not in d
                    and d["annotations"]["_debugLabel"].startswith("[./model/LSTM.lua]")]
    first = [d for d in gate_selects if d["selectindex"] == 1][0]
    third = [d for d in gate_selects if d["selectindex"] == 3][0]
    first["selectindex"], third["selectindex"] = 3.0, 1.0     # input gate <-> output gate
    assert "does not compute char-rnn's lstm" in _refusal(root, tmp_path)


def test_unknown_module_in_the_graph_is_named(tmp_path):
    root = read_t7(CHARRNN / "rnn_2x64.t7")
    (tanh, *_) = [d for d in _graph_nodes(root)
                  if "module" in d and d["module"].class_name == "nn.Tanh"]
    tanh["module"].class_name = "nn.ReLU"
    assert "holds a nn.ReLU, which is not one of char-rnn's modules" in \
        _refusal(root, tmp_path)


def test_missing_layer_linear_is_refused(tmp_path):
    root = read_t7(CHARRNN / "lstm_2x64.t7")
    nodes = _graph_nodes(root)
    (h2h,) = [d for d in nodes if d["annotations"].get("name") == "h2h_2"]
    h2h["module"].class_name = "nn.Identity"
    assert "layer 2: expected one Linear on its input and one on its previous h" in \
        _refusal(root, tmp_path)


def test_a_torchrnn_checkpoint_is_not_a_charrnn_one():
    path = FIXTURES / "golden" / "checkpoints" / "lstm_small_cp_159.t7"
    with pytest.raises(TorchRNNError, match="a torch-rnn checkpoint, not a char-rnn one"):
        load_charrnn(path)


def test_vocabulary_that_is_not_bytes_is_refused(tmp_path):
    root = read_t7(CHARRNN / "rnn_2x64.t7")
    root["vocab"]["ab"] = root["vocab"].pop("a")
    assert "vocab should map single bytes to ids" in _refusal(root, tmp_path)


def test_damaged_charrnn_files_load_or_fail_in_one_line(tmp_path):
    """Random byte damage anywhere in a char-rnn file: the loader either gives a model or one
    TorchRNNError naming the file, never another exception."""
    raw = (CHARRNN / "rnn_2x64.t7").read_bytes()
    rng = random.Random(3)
    path = tmp_path / "damaged.t7"
    outcomes = set()
    for trial in range(30):
        data = bytearray(raw)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            data[at] = rng.randrange(256)
        path.write_bytes(bytes(data))
        try:
            load_charrnn(path)
            outcomes.add("loaded")
        except TorchRNNError as err:
            assert str(path) in str(err) and "\n" not in str(err)
            outcomes.add("refused")
    assert outcomes == {"loaded", "refused"}


def _first_module(root, class_name):
    return [d for d in _graph_nodes(root) if "module" in d
            and d["module"].class_name == class_name][0]


def _nan_vocab_id(root):
    root["vocab"]["a"] = float("nan")


def _inf_vocab_id(root):
    root["vocab"]["a"] = float("inf")


def _string_val_loss_key(root):
    root["val_losses"]["abc"] = 1.0


def _string_val_loss(root):
    root["val_losses"][380] = "x"


def _string_dropout_p(root):
    _first_module(root, "nn.Dropout")["module"].fields["p"] = "abc"


def _orphan_one_hot(root):
    _first_module(root, "OneHot")["mapindex"].clear()


def _orphan_log_softmax(root):
    _first_module(root, "nn.LogSoftMax")["mapindex"].clear()


def _split_dimension_7(root):
    _first_module(root, "nn.SplitTable")["module"].fields["dimension"] = 7.0


def _huge_one_hot(root):
    _first_module(root, "OneHot")["module"].fields["outputSize"] = 2.0 ** 31


def _integer_weight(root):
    linear = _first_module(root, "nn.Linear")["module"]
    linear.fields["weight"] = linear["weight"].long()


def _nan_bias(root):
    _first_module(root, "nn.Linear")["module"]["bias"][0] = float("nan")


@pytest.mark.parametrize("name, damage, expected", [
    ("rnn_2x64", _nan_vocab_id, "vocab should number its 62 bytes 1..62, found nan"),
    ("rnn_2x64", _inf_vocab_id, "vocab should number its 62 bytes 1..62, found inf"),
    ("rnn_2x64", _string_val_loss_key, "val_losses should map iterations to losses"),
    ("rnn_2x64", _string_val_loss, "val_losses should map iterations to losses"),
    ("lstm_2x48_dropout0.5", _string_dropout_p, "one nn.Dropout(p) after each"),
    ("rnn_2x64", _orphan_one_hot, "does not go through one OneHot"),
    ("rnn_2x64", _orphan_log_softmax, "into the LogSoftMax output"),
    ("lstm_2x64", _split_dimension_7, "its graph cannot be run"),
    ("rnn_2x64", _huge_one_hot, "its OneHot has outputSize 2147483648"),
    ("rnn_2x64", _integer_weight, "floating-point weight of shape (64, 62), found a "
                                  "torch.int64 tensor"),
    ("rnn_2x64", _nan_bias, "its weights hold NaN or infinite values"),
])
def test_damaged_fields_are_one_line(tmp_path, name, damage, expected):
    """Fields a damaged or hand-edited file can hold (found by a hostile tester): each is one
    line before any model is run or memory is taken for it, never a Python exception."""
    root = read_t7(CHARRNN / f"{name}.t7")
    damage(root)
    assert expected in _refusal(root, tmp_path)


def test_a_second_linear_on_the_reset_gated_h_is_refused(tmp_path):
    """A GRU variant with one more Linear reading r * h (a new node just before the output
    node): its wiring is not char-rnn's GRU, said in one line."""
    root = read_t7(CHARRNN / "gru_2x64.t7")
    forward = root["protos"]["rnn"]["forwardnodes"]
    h2h_c = [n for n in (forward[k] for k in sorted(forward))
             if n["data"].get("module") is not None
             and n["data"]["module"].class_name == "nn.Linear"
             and n["data"]["mapindex"][1]["module"].class_name == "nn.CMulTable"][0]
    data = dict(h2h_c["data"], mapindex={1: h2h_c["data"]["mapindex"][1]},
                module=TorchObject("nn.Linear", dict(h2h_c["data"]["module"].fields)))
    extra = TorchObject("nngraph.Node", dict(h2h_c.fields, data=data))
    last = len(forward)
    forward[last], forward[last + 1] = extra, forward[last]
    assert "layer 1: expected one Linear on the reset-gated h, found 2" in \
        _refusal(root, tmp_path)
