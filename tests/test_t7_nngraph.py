"""Reading char-rnn's nngraph checkpoints (tests/fixtures/charrnn, made by the real char-rnn on
Torch7): tables keyed by tables, the gModule / Node / Graph web, OneHot, and the facts its
README.md verifies; damaged copies fail in one T7FormatError."""
import functools
import random

import pytest
import torch

from torchrnn_py.t7 import T7FormatError, TableKey, dumps_t7, loads_t7, read_t7

from conftest import FIXTURES

CHARRNN = FIXTURES / "charrnn"
# name -> (model, num_layers, rnn_size, dropout, params, val loss in the file name): README table
FACTS = {
    "lstm_2x64": ("lstm", 2, 64, 0, 70078, 2.0760),
    "gru_2x64": ("gru", 2, 64, 0, 53566, 1.8356),
    "rnn_2x64": ("rnn", 2, 64, 0, 20542, 1.9633),
    "lstm_2x48_dropout0.5": ("lstm", 2, 48, 0.5, 43358, 2.3166),
}
# the vocabulary in index order (fixtures README, "Vocabulary"): \n !&',-.:;? A-W Y Z a-z
VOCAB = b"\n !&',-.:;?ABCDEFGHIJKLMNOPQRSTUVWYZabcdefghijklmnopqrstuvwxyz"
CLASSES = {"nn.Identity", "OneHot", "nn.Linear", "nn.CAddTable", "nn.CMulTable", "nn.Sigmoid",
           "nn.Tanh", "nn.Reshape", "nn.SplitTable", "nn.MulConstant", "nn.AddConstant",
           "nn.Dropout", "nn.LogSoftMax"}


@functools.lru_cache(maxsize=None)
def _raw(name):
    return (CHARRNN / f"{name}.t7").read_bytes()


@functools.lru_cache(maxsize=None)
def _load(name):
    return read_t7(CHARRNN / f"{name}.t7")


def _modules(root):
    modules = root["protos"]["rnn"]["modules"]
    return [modules[i] for i in range(1, len(modules) + 1)]


def _linear_shapes(model, layers, size):
    """Each Linear's weight (out, in) in modules order (README, "Where the Linears sit")."""
    shapes = []
    for layer in range(layers):
        width = len(VOCAB) if layer == 0 else size
        if model == "lstm":
            shapes += [(4 * size, width), (4 * size, size)]
        elif model == "rnn":
            shapes += [(size, width), (size, size)]
        else:
            shapes += [(size, width), (size, size), (size, width), (size, width), (size, size),
                       (size, size)]
    return shapes + [(len(VOCAB), size)]


@pytest.mark.parametrize("name", list(FACTS))
def test_checkpoint_fields_and_vocabulary(name):
    model, layers, size, dropout, _, val_loss = FACTS[name]
    root = _load(name)
    assert sorted(root) == ["epoch", "i", "opt", "protos", "train_losses", "val_loss",
                            "val_losses", "vocab"]
    opt = root["opt"]
    assert len(opt) == 24
    assert (opt["model"], opt["num_layers"], opt["rnn_size"], opt["dropout"], opt["seed"]) == \
        (model, layers, size, dropout, 123)
    assert opt["savefile"] == name and opt["batch_size"] == 20 and opt["seq_length"] == 50
    assert root["i"] == 380 and root["epoch"] == 2
    assert round(root["val_loss"], 4) == val_loss
    assert root["val_losses"] == {380: root["val_loss"]}
    assert sorted(root["train_losses"]) == list(range(1, 381))
    vocab = root["vocab"]
    assert sorted(vocab.values()) == list(range(1, len(VOCAB) + 1))
    in_order = sorted(vocab, key=vocab.get)
    assert [t.encode("latin-1") for t in in_order] == [bytes([b]) for b in VOCAB]


@pytest.mark.parametrize("name", list(FACTS))
def test_protos_classes_and_parameters(name):
    model, layers, size, dropout, params, _ = FACTS[name]
    root = _load(name)
    rnn, criterion = root["protos"]["rnn"], root["protos"]["criterion"]
    assert rnn.class_name == "nn.gModule" and criterion.class_name == "nn.ClassNLLCriterion"
    assert rnn["nInputs"] == (2 * layers + 1 if model == "lstm" else layers + 1)
    assert rnn["verbose"] is False and rnn["output"] == {}
    assert rnn["_type"] == "torch.DoubleTensor"
    modules = _modules(root)
    classes = {m.class_name for m in modules}
    assert classes <= CLASSES and {"OneHot", "nn.Linear", "nn.LogSoftMax"} <= classes
    assert ("nn.Dropout" in classes) == (dropout > 0)
    assert (("nn.MulConstant" in classes) and ("nn.AddConstant" in classes)) == (model == "gru")
    (one_hot,) = [m for m in modules if m.class_name == "OneHot"]
    assert one_hot["outputSize"] == len(VOCAB)
    assert torch.equal(one_hot["_eye"], torch.eye(len(VOCAB), dtype=torch.float64))
    linears = [m for m in modules if m.class_name == "nn.Linear"]
    assert [tuple(m["weight"].shape) for m in linears] == _linear_shapes(model, layers, size)
    tensors = [t for m in linears for t in (m["weight"], m["bias"])]
    assert sum(t.numel() for t in tensors) == params
    # all W,b are views of one float64 storage, laid out in modules order
    base = tensors[0].untyped_storage().data_ptr()
    assert all(t.untyped_storage().data_ptr() == base for t in tensors)
    assert [t.storage_offset() for t in tensors] == \
        [sum(u.numel() for u in tensors[:i]) for i in range(len(tensors))]
    assert all(t.dtype == torch.float64 for t in tensors)
    for m in modules:
        if m.class_name == "nn.Dropout":
            assert (m["p"], m["train"], m["v2"]) == (0.5, True, True)
    assert sum(m.class_name == "nn.Dropout" for m in modules) == (layers if dropout else 0)


@pytest.mark.parametrize("name", list(FACTS))
def test_node_web_keeps_identity(name):
    """Nodes, their data tables, the table-keyed mapindex and the graphs are one shared web."""
    rnn = _load(name)["protos"]["rnn"]
    nodes = [rnn["forwardnodes"][i] for i in range(1, len(rnn["forwardnodes"]) + 1)]
    assert all(n.class_name == "nngraph.Node" for n in nodes)
    assert rnn["fg"].class_name == "graph.Graph" and rnn["bg"].class_name == "graph.Graph"
    fg_nodes = rnn["fg"]["nodes"]     # graph.Graph keeps nodes[i] = node and nodes[node] = i
    listed = [v for k, v in fg_nodes.items() if isinstance(k, int)]
    assert {id(n) for n in listed} == {id(n) for n in nodes}
    assert all(fg_nodes[fg_nodes[n]] is n for n in listed)
    assert any(rnn["innode"] is n for n in nodes)
    backward = [rnn["backwardnodes"][i] for i in range(1, len(rnn["backwardnodes"]) + 1)]
    assert any(rnn["outnode"] is n for n in backward)   # the reversed graph's node ...
    assert rnn["outnode"]["data"] is nodes[-1]["data"]   # ... shares the output node's data
    datas = {id(n["data"]) for n in nodes}
    assert {id(n["data"]) for n in backward} == datas
    table_keys = 0
    for node in nodes:
        assert "_debugLabel" in node["data"]["annotations"]
        mapindex = node["data"]["mapindex"]
        for key, value in mapindex.items():
            if isinstance(key, TableKey):   # mapindex[parent.data] = position, parent in the web
                table_keys += 1
                assert id(key.table) in datas
                assert mapindex[value] is key.table
                assert mapindex[TableKey(key.table)] == value
        children = node["children"]  # children[i] = node and children[node] = i
        for i in [k for k in children if isinstance(k, int)]:
            assert id(children[i]["data"]) in datas and children[children[i]] == i
    assert table_keys >= len(nodes) - 1
    modules = [n["data"]["module"] for n in nodes if "module" in n["data"]]
    assert [id(m) for m in modules] == [id(m) for m in _modules(_load(name))]
    names = sorted(n["data"]["annotations"].get("name", "") for n in nodes)
    model, layers = FACTS[name][:2]
    wanted = sorted([f"{k}_{i}" for i in range(1, layers + 1) for k in ("i2h", "h2h")] +
                    ["decoder"]) if model == "lstm" else []
    assert [x for x in names if x] == wanted


@pytest.mark.parametrize("name", list(FACTS))
def test_nngraph_file_rewrites_byte_for_byte(name):
    assert dumps_t7(_load(name)) == _raw(name)


def test_tables_as_keys_are_identity_keys_as_in_lua():
    a, b = {"x": 1}, {"x": 1}                      # equal contents, two Lua tables
    root = {TableKey(a): 1, TableKey(b): 2, "a": a}
    root[TableKey(root)] = "self"                  # a table keyed by itself
    back = loads_t7(dumps_t7(root))
    keys = [k for k in back if isinstance(k, TableKey)]
    assert len(keys) == 3 and back[TableKey(back["a"])] == 1
    assert back[TableKey(back)] == "self"
    assert TableKey({"x": 1}) not in back
    assert dumps_t7(back) == dumps_t7(root)


def test_truncated_nngraph_file_is_a_clean_error(tmp_path):
    raw = _raw("rnn_2x64")
    rng = random.Random(12)
    path = tmp_path / "cut.t7"
    for n in sorted(rng.sample(range(1, len(raw)), 12)):
        path.write_bytes(raw[:n])
        with pytest.raises(T7FormatError) as info:
            read_t7(path)
        message = str(info.value)
        assert str(path) in message and "\n" not in message


def _reference_offsets(data):
    """Where the file's object reference indices lie (nngraph's web is made of them)."""
    offsets = []
    for at in range(0, len(data) - 8):
        tag = int.from_bytes(data[at:at + 4], "little")
        if tag in (3, 4) and 0 < int.from_bytes(data[at + 4:at + 8], "little") < 5000:
            offsets.append(at + 4)
    return offsets


def test_mutated_nngraph_files_load_or_fail_cleanly():
    """Retargeted references (a key becoming a node, a forward reference) and byte damage."""
    raw = _raw("rnn_2x64")
    rng = random.Random(5)
    offsets = _reference_offsets(raw[:60000])
    clean = 0
    for trial in range(40):
        data = bytearray(raw)
        at = rng.choice(offsets)
        if trial % 2:
            data[at:at + 4] = rng.choice([0, 1, 2, 5, 9, 700, 1 << 20]).to_bytes(4, "little")
        else:
            data[at + rng.randrange(-8, 8)] = rng.randrange(256)
        try:
            loads_t7(bytes(data))
        except T7FormatError as err:
            assert "\n" not in str(err)
            clean += 1
    assert clean > 10
