"""char-rnn checkpoints written as train.lua writes them (torchrnn_py/charrnn/write.py).

Each of the four real char-rnn checkpoints (tests/fixtures/charrnn) is rebuilt from nothing but
its Linears, vocabulary, options and histories: the object web has the original's structure
(same classes, fields, node ids, graph wiring, orders and storage sharing), the file is the
original byte for byte once the entries of tables keyed by objects (whose order follows memory
addresses in LuaJIT) are put in the original's order and the never-initialised
``nn.Reshape.batchsize[1]`` is given the original's garbage, and both our loader and torchfile
read it back. Other sizes (3 layers, rnn_size 17, dropout 0.3, bytes above 127) load through
``load_charrnn``, whose check runs the stored graph.
"""
import collections
import functools
import hashlib
import os

import h5py
import numpy as np
import pytest
import torch
import torchfile

from torchrnn_py.charrnn import load_charrnn
from torchrnn_py.charrnn.luatable import number_hash, pairs_order, string_hash
from torchrnn_py.charrnn.write import (FIELD_ORDER, TOP_ORDER, charrnn_checkpoint_table,
                                       write_charrnn_checkpoint)
from torchrnn_py.errors import TorchRNNError
from torchrnn_py.t7 import Storage, TableKey, TorchObject, dumps_t7, read_t7

from conftest import FIXTURES

CHARRNN = FIXTURES / "charrnn"
NAMES = ["lstm_2x64", "gru_2x64", "rnn_2x64", "lstm_2x48_dropout0.5"]
#: Tables keyed by nngraph objects: LuaJIT orders their entries by memory address.
ADDRESS_ORDERED = {"children", "nodes", "edges", "mapindex", "reverseMap"}


# --- what a fixture holds, as the arguments train.lua's state gives ----------------------------

def _modules(root):
    modules = root["protos"]["rnn"]["modules"]
    return [modules[k] for k in sorted(modules)]


def _arguments(root, with_grads=True):
    """charrnn_checkpoint_table's arguments taken from a checkpoint read with read_t7."""
    linears = [m for m in _modules(root) if m.class_name == "nn.Linear"]
    vocab = sorted(root["vocab"], key=root["vocab"].get)
    losses = root["train_losses"]
    kwargs = dict(
        model_type=root["opt"]["model"],
        vocab_bytes=[char.encode("utf-8", "surrogateescape") for char in vocab],
        linears=[(m["weight"], m["bias"]) for m in linears], dropout=root["opt"]["dropout"],
        opt=root["opt"], train_losses=[losses[k] for k in sorted(losses)],
        val_losses=root["val_losses"], i=root["i"], epoch=root["epoch"])
    if with_grads:
        kwargs["grad_linears"] = [(m["gradWeight"], m["gradBias"]) for m in linears]
    return kwargs


def _fixture(name):
    """The fixture read, with the garbage batchsize[1] of every nn.Reshape set to the 0 we
    write (fixtures README, "Determinism": it is never initialised)."""
    root = read_t7(CHARRNN / f"{name}.t7")
    for module in _modules(root):
        if module.class_name == "nn.Reshape":
            module["batchsize"].data[0] = 0
    return root


def _rebuilt(name, with_grads=True):
    return charrnn_checkpoint_table(**_arguments(read_t7(CHARRNN / f"{name}.t7"), with_grads))


# --- a structural fingerprint: the object web in a canonical, order-free walk -----------------

def _is_container(value):
    return isinstance(value, (dict, TorchObject, torch.Tensor, Storage, TableKey))


def fingerprint(root):
    """One line per object reached from ``root``, breadth first, with objects numbered in
    the order they are first met and table entries sorted (plain keys by value, object keys
    by their number or, for a node met first as a key, its data's forwardNodeId): equal for
    two webs exactly when they hold the same classes, versions, fields, values, node ids,
    wiring, tensor layouts and sharing, whatever order their tables list entries in."""
    numbers, storages, lines, queue = {}, {}, [], collections.deque()

    def ref(value):
        value = value.table if isinstance(value, TableKey) else value
        if id(value) not in numbers:
            numbers[id(value)] = len(numbers)
            queue.append(value)
        return ("ref", numbers[id(value)])

    def plain(value):
        if isinstance(value, bool) or value is None:
            return ("const", value)
        if isinstance(value, (int, float)):
            return ("number", float(value))
        if isinstance(value, bytes):
            value = value.decode("utf-8", "surrogateescape")
        return ("string", value)

    def key_rank(key):
        table = key.table if isinstance(key, TableKey) else key
        if id(table) in numbers:
            return (0, numbers[id(table)])
        data = table.get("data") if isinstance(table, TorchObject) else None
        return (1, float(data["forwardNodeId"])) if isinstance(data, dict) else (2, 0.0)

    def value(v):
        return ref(v) if _is_container(v) else plain(v)

    ref(root)
    while queue:
        obj = queue.popleft()
        if isinstance(obj, torch.Tensor):
            lines.append(_tensor_line(obj, storages))
        elif isinstance(obj, Storage):
            lines.append(("storage", obj.class_name, tuple(obj.data.tolist())))
        else:
            head = ("object", obj.class_name, obj.version) if isinstance(obj, TorchObject) \
                else ("table",)
            table = obj.fields if isinstance(obj, TorchObject) else obj
            entries = [(plain(k), value(table[k]))
                       for k in sorted((k for k in table if not _is_container(k)), key=plain)]
            keyed = sorted((k for k in table if _is_container(k)), key=key_rank)
            entries += [(ref(k), value(table[k])) for k in keyed]
            lines.append(head + (tuple(entries),))
    return lines


def _tensor_line(tensor, storages):
    if tensor.numel() == 0:
        return ("empty tensor", str(tensor.dtype))
    storage = tensor.untyped_storage()
    if storage.data_ptr() not in storages:
        raw = torch.empty(0, dtype=torch.uint8).set_(storage).numpy().tobytes()
        digest = hashlib.sha256(raw).hexdigest()
        storages[storage.data_ptr()] = (len(storages), storage.nbytes(), digest)
    return ("tensor", str(tensor.dtype), tuple(tensor.shape), tensor.stride(),
            tensor.storage_offset(), storages[storage.data_ptr()])


# --- putting address-ordered entries in the original's order ----------------------------------

def align(mine, theirs):
    """Reorder the entries of ``mine``'s tables to follow ``theirs`` (walking both webs
    together); returns the names of the fields whose tables had to be reordered."""
    seen = {id(theirs): mine}
    queue = collections.deque([(mine, theirs, "root")])
    reordered = []
    while queue:
        m, t, field = queue.popleft()
        if not isinstance(t, (dict, TorchObject)):
            continue
        mt, tt = (m.fields, t.fields) if isinstance(t, TorchObject) else (m, t)
        for plain_first in (True, False):          # values under plain keys are met first
            order = [_counterpart(k, mt, seen, queue, field) if plain_first is False
                     else k for k in tt]
            for key, (their_key, their_value) in zip(order, tt.items()):
                if _is_container(their_key) == plain_first:
                    continue
                if _is_container(their_value) and id(their_value) not in seen:
                    seen[id(their_value)] = mt[key]
                    name = their_key if isinstance(their_key, str) else field
                    queue.append((mt[key], their_value, name))
        assert set(order) == set(mt), field
        if list(mt) != order:
            reordered.append(field)
            items = [(k, mt[k]) for k in order]
            mt.clear()
            mt.update(items)
    return reordered


def _counterpart(key, table, seen, queue, field):
    """Our key for their ``key``: the same plain value, or the object matched to theirs (a
    node met first as a key is matched by its data's forwardNodeId)."""
    if not _is_container(key):
        return key
    theirs = key.table if isinstance(key, TableKey) else key
    if id(theirs) not in seen:
        wanted = theirs["data"]["forwardNodeId"]
        (ours,) = [k for k in table if isinstance(k, TorchObject)
                   and k["data"]["forwardNodeId"] == wanted]
        seen[id(theirs)] = ours
        queue.append((ours, theirs, field))
    ours = seen[id(theirs)]
    return TableKey(ours) if isinstance(key, TableKey) else ours


# --- (a) the same object web, and the same bytes ---------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_rebuilt_table_has_the_originals_structure(name):
    theirs = fingerprint(_fixture(name))
    ours = fingerprint(_rebuilt(name))
    assert len(theirs) > 200
    assert ours == theirs


@pytest.mark.parametrize("name", NAMES)
def test_rebuilt_file_is_the_original_byte_for_byte_but_for_address_order(name):
    raw = (CHARRNN / f"{name}.t7").read_bytes()
    theirs = read_t7(CHARRNN / f"{name}.t7")
    ours = _rebuilt(name)
    assert dumps_t7(ours) != raw
    reordered = align(ours, theirs)
    assert reordered and set(reordered) <= ADDRESS_ORDERED       # vocab, opt, fields: as is
    garbage = [(mine["batchsize"].data, original["batchsize"].data[0])
               for mine, original in zip(_modules(ours), _modules(theirs))
               if mine.class_name == "nn.Reshape"]
    assert all(mine[0] == 0 for mine, _ in garbage)
    assert any(value != 0 for _, value in garbage) == (dumps_t7(ours) != raw)
    for mine, value in garbage:                                  # the original's batchsize[1]
        mine[0] = value
    assert dumps_t7(ours) == raw


def test_the_table_is_the_same_every_time():
    assert dumps_t7(_rebuilt("gru_2x64")) == dumps_t7(_rebuilt("gru_2x64"))


def test_parameters_are_views_of_one_storage_and_gradients_of_another():
    table = _rebuilt("lstm_2x64", with_grads=False)
    linears = [m for m in _modules(table) if m.class_name == "nn.Linear"]
    params = {m[k].untyped_storage().data_ptr() for m in linears for k in ("weight", "bias")}
    grads = {m[k].untyped_storage().data_ptr() for m in linears
             for k in ("gradWeight", "gradBias")}
    assert len(params) == len(grads) == 1 and params != grads
    flat = linears[0]["weight"].untyped_storage()
    assert flat.nbytes() == 8 * 70078                    # "number of parameters" in the log
    assert all(float(m[k].abs().sum()) == 0 for m in linears for k in ("gradWeight",
                                                                         "gradBias"))
    offsets = [m[k].storage_offset() for m in linears for k in ("weight", "bias")]
    assert offsets == sorted(offsets) and offsets[0] == 0        # W, b of each, modules order


# --- (b) our loader and (c) torchfile read the written file ------------------------------------

@functools.lru_cache(maxsize=None)
def _dump(name):
    with h5py.File(CHARRNN / f"{name}.forward.h5", "r") as f:
        return {key: f[key][()] for key in f}


def _logprobs(model, ids):
    model.reset_states()
    with torch.no_grad():
        scores = model(torch.as_tensor(ids, dtype=torch.long).view(1, -1))[0]
    model.reset_states()
    return torch.log_softmax(scores.double(), -1)


@pytest.mark.parametrize("name", NAMES)
def test_written_file_loads_as_the_same_model(name, tmp_path):
    path = tmp_path / f"lm_{name}.t7"
    write_charrnn_checkpoint(path, _rebuilt(name))
    ours, theirs = load_charrnn(path), load_charrnn(CHARRNN / f"{name}.t7")
    mine, original = ours.model.state_dict(), theirs.model.state_dict()
    assert mine.keys() == original.keys()
    assert all(torch.equal(mine[k], original[k]) for k in mine)
    ids = _dump(name)["input"][:40]
    assert torch.equal(_logprobs(ours.model, ids), _logprobs(theirs.model, ids))
    assert torch.allclose(_logprobs(ours.model, ids),
                          torch.from_numpy(_dump(name)["logprobs"][:40]), rtol=0, atol=1e-10)
    for field in ("opt", "i", "epoch", "val_loss", "train_losses", "val_losses",
                  "model_type"):
        assert getattr(ours, field) == getattr(theirs, field), field


@pytest.mark.parametrize("name", NAMES)
def test_torchfile_reads_the_written_file_as_the_original(name, tmp_path):
    path = tmp_path / f"{name}.t7"
    write_charrnn_checkpoint(path, _rebuilt(name))
    ours, theirs = torchfile.load(str(path)), torchfile.load(str(CHARRNN / f"{name}.t7"))
    assert set(ours) == set(theirs) == {k.encode() for k in TOP_ORDER}
    for key in (b"vocab", b"opt", b"val_losses"):
        assert dict(ours[key].items()) == dict(theirs[key].items()), key
    for key in (b"i", b"epoch", b"val_loss", b"train_losses"):
        assert ours[key] == theirs[key], key
    assert len(ours[b"vocab"]) == 62 and len(ours[b"train_losses"]) == 380
    rnn, original = ours[b"protos"][b"rnn"], theirs[b"protos"][b"rnn"]
    assert rnn.torch_typename() == b"nn.gModule" and rnn[b"nInputs"] == original[b"nInputs"]
    assert ours[b"protos"][b"criterion"].torch_typename() == b"nn.ClassNLLCriterion"
    assert len(rnn[b"modules"]) == len(original[b"modules"])
    for mine, theirs_module in zip(rnn[b"modules"], original[b"modules"]):
        assert mine.torch_typename() == theirs_module.torch_typename()
        for field in (b"weight", b"bias", b"gradWeight", b"gradBias", b"_eye"):
            if field in theirs_module._obj:
                assert np.array_equal(mine[field], theirs_module[field]), field


# --- other sizes, through load_charrnn's graph check -----------------------------------------

HIGH_VOCAB = [bytes([b]) for b in [0x0a, 0x20, 0x21] + list(range(0x41, 0x5b))
              + list(range(0x61, 0x7b)) + [0x80, 0xa9, 0xc3, 0xe2, 0xff]]


def _shapes(model_type, V, H, L):
    """(out, in) of each Linear in modules order (fixtures README, "Where the Linears sit")."""
    shapes = []
    for layer in range(L):
        D = V if layer == 0 else H
        shapes += {"lstm": [(4 * H, D), (4 * H, H)], "rnn": [(H, D), (H, H)],
                   "gru": [(H, D), (H, H), (H, D), (H, D), (H, H), (H, H)]}[model_type]
    return shapes + [(V, H)]


def _random_linears(model_type, V, H, L, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.rand(out, inp, generator=gen, dtype=torch.float64) - 0.5,
             torch.rand(out, generator=gen, dtype=torch.float64) - 0.5)
            for out, inp in _shapes(model_type, V, H, L)]


def _expected_layer(model_type, linears, layer, H):
    """torch-rnn's (D+H, G) weight and (G,) bias of ``layer`` from the Linears by role."""
    if model_type != "gru":
        (w_x, b_x), (w_h, b_h) = linears[2 * layer:2 * layer + 2]
        return torch.cat([w_x.t(), w_h.t()]), b_x + b_h
    i2h_z, h2h_z, i2h_c, i2h_r, h2h_r, h2h_c = linears[6 * layer:6 * layer + 6]
    blocks = [(i2h_z, h2h_z), (i2h_r, h2h_r), (i2h_c, h2h_c)]           # z | r | c
    weight = torch.cat([torch.cat([x[0].t(), h[0].t()]) for x, h in blocks], 1)
    return weight, torch.cat([x[1] + h[1] for x, h in blocks])


@pytest.mark.parametrize("model_type", ["lstm", "gru", "rnn"])
def test_other_sizes_load_back_and_run(model_type, tmp_path):
    V, H, L = len(HIGH_VOCAB), 17, 3
    linears = _random_linears(model_type, V, H, L)
    opt = {"model": model_type, "rnn_size": H, "num_layers": L, "dropout": 0.3,
           "seed": 123, "savefile": "big"}
    table = charrnn_checkpoint_table(model_type, HIGH_VOCAB, linears, 0.3, opt,
                                     [4.1, 3.9, 3.5], {3: 3.4}, 3, 0.75)
    path = tmp_path / "lm_big.t7"
    write_charrnn_checkpoint(path, table)
    assert fingerprint(read_t7(path)) == fingerprint(table)
    ck = load_charrnn(path)                       # refuses a graph computing anything else
    model = ck.model
    assert (model.model_type, model.num_layers, model.rnn_size, model.dropout) == \
        (model_type, L, H, 0.3)
    assert ck.vocab.decode_bytes(np.arange(1, V + 1)) == b"".join(HIGH_VOCAB)
    for layer, rnn in enumerate(model.rnns):
        weight, bias = _expected_layer(model_type, linears, layer, H)
        assert torch.equal(rnn.weight, weight) and torch.allclose(rnn.bias, bias, atol=1e-15)
    assert torch.equal(model.linear.weight, linears[-1][0])
    assert (ck.i, ck.epoch, ck.val_loss, ck.train_losses, ck.val_losses) == \
        (3, 0.75, 3.4, [4.1, 3.9, 3.5], {3: 3.4})
    dropouts = [m for m in _modules(read_t7(path)) if m.class_name == "nn.Dropout"]
    assert len(dropouts) == L and all(m["p"] == 0.3 and m["train"] for m in dropouts)
    assert torchfile.load(str(path))[b"opt"][b"rnn_size"] == H


def test_one_layer_without_dropout_has_no_dropout_modules(tmp_path):
    linears = _random_linears("lstm", 5, 4, 1)
    opt = {"model": "lstm", "rnn_size": 4, "num_layers": 1, "dropout": 0}
    table = charrnn_checkpoint_table("lstm", [b"a", b"b", b"c", b"d", b"e"], linears, 0, opt,
                                     [1.0], {1: 1.5}, 1, 1)
    classes = [m.class_name for m in _modules(table)]
    assert "nn.Dropout" not in classes and classes.count("nn.Linear") == 3
    write_charrnn_checkpoint(tmp_path / "one.t7", table)
    assert load_charrnn(tmp_path / "one.t7").model.num_layers == 1


# --- LuaJIT's entry order ---------------------------------------------------------------------

#: The order each class's constructor sets its fields (nn's Module.lua, Linear.lua, ...,
#: nngraph's node.lua, graph's init.lua): torch.save lists them in pairs order of a copy.
CONSTRUCTED = {
    "nn.Identity": [], "nn.Linear": ["weight", "gradWeight", "bias", "gradBias"],
    "OneHot": ["outputSize", "_eye"], "nn.Reshape": ["size", "batchsize", "nelement"],
    "nn.SplitTable": ["dimension"], "nn.MulConstant": ["constant_scalar", "inplace"],
    "nn.Dropout": ["p", "train", "stochastic_inference", "v2", "noise"],
}


def test_lua_order_matches_the_fixtures_tables():
    root = read_t7(CHARRNN / "lstm_2x64.t7")
    ids = sorted(root["vocab"], key=root["vocab"].get)
    assert pairs_order(pairs_order(ids)) == list(root["vocab"])     # loaded from vocab.t7
    assert pairs_order(ids) != list(root["vocab"])
    assert pairs_order(["protos", "opt", "train_losses", "val_loss", "val_losses", "i",
                        "epoch", "vocab"]) == list(TOP_ORDER)
    for name, own in CONSTRUCTED.items():
        fields = ["gradInput", "output", "_type"] + own
        assert pairs_order(pairs_order(fields)) == list(FIELD_ORDER[name]), name
    assert pairs_order(pairs_order(["data", "id", "children", "visited", "marked"])) == \
        list(FIELD_ORDER["nngraph.Node"])
    assert pairs_order(pairs_order(["from", "to"])) == list(FIELD_ORDER["graph.Edge"])


def test_lua_order_of_numbers():
    for n in (1, 2, 3, 380, 4097):
        assert pairs_order(range(1, n + 1)) == list(range(1, n + 1))   # the array part
    assert pairs_order([380]) == [380] and pairs_order([3, 1, 2]) == [1, 2, 3]
    sparse = [380 * k for k in range(1, 40)]     # too sparse for the array part: hashed
    assert sorted(pairs_order(sparse)) == sparse
    assert pairs_order([1, 2, "x", 3]) == [1, 2, 3, "x"]
    assert string_hash(b"") == 0xdeadbeef and string_hash(b"a") != string_hash(b"b")
    assert number_hash(0.0) == number_hash(-0.0)


# --- bad arguments and safe writing ------------------------------------------------------------

def _small(**changes):
    args = dict(model_type="rnn", vocab_bytes=[b"a", b"b", b"c"],
                linears=_random_linears("rnn", 3, 4, 1), dropout=0,
                opt={"model": "rnn", "rnn_size": 4, "num_layers": 1, "dropout": 0},
                train_losses=[1.0], val_losses={1: 1.0}, i=1, epoch=1)
    args.update(changes)
    return args


@pytest.mark.parametrize("changes, message", [
    ({"model_type": "lstm2"}, "model_type should be one of lstm, gru, rnn"),
    ({"linears": _random_linears("rnn", 3, 4, 1)[:2]}, "so 1 + 2 * num_layers of them"),
    ({"linears": _random_linears("rnn", 3, 4, 1)[::-1]}, "the decoder (the last Linear)"),
    ({"linears": _random_linears("rnn", 3, 4, 1)[:1] * 2 + _random_linears("rnn", 3, 4, 1)[2:]},
     "the weight of Linear 2 (h2h of layer 1) should have shape (4, 4)"),
    ({"opt": {"model": "rnn", "rnn_size": 5, "num_layers": 1}}, "opt.rnn_size is 5"),
    ({"opt": {"model": "rnn", "rnn_size": 4}}, "opt should hold num_layers"),
    ({"val_losses": {2: 1.0}}, "val_losses should hold the loss of iteration 1"),
    ({"vocab_bytes": [b"a", b"b", b"a"]}, "holds the byte b'a' twice"),
    ({"vocab_bytes": [b"a", b"bc", b"d"]}, "vocab_bytes[1] should be a single byte"),
    ({"dropout": 1.0}, "dropout should be a number in [0, 1)"),
    ({"grad_linears": []}, "grad_linears should hold 3 pairs"),
])
def test_bad_arguments_are_refused_in_one_line(changes, message):
    with pytest.raises(ValueError) as err:
        charrnn_checkpoint_table(**_small(**changes))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_failed_write_keeps_the_old_checkpoint(tmp_path):
    path = tmp_path / "lm_old.t7"
    path.write_bytes(b"the previous checkpoint")
    table = charrnn_checkpoint_table(**_small())
    table["opt"]["unwritable"] = object()
    with pytest.raises(TypeError, match="cannot write a object"):
        write_charrnn_checkpoint(path, table)
    assert path.read_bytes() == b"the previous checkpoint"
    assert os.listdir(tmp_path) == ["lm_old.t7"]
    del table["opt"]["unwritable"]
    write_charrnn_checkpoint(path, table)
    assert load_charrnn(path).model_type == "rnn"


def test_writing_into_a_missing_folder_is_one_error(tmp_path):
    with pytest.raises(TorchRNNError, match="missing"):
        write_charrnn_checkpoint(tmp_path / "missing" / "lm.t7",
                                 charrnn_checkpoint_table(**_small()))
