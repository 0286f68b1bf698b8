"""Checkpoints: real torch-rnn .t7 files load and compute what their raw tensors say
(checked with torchfile, an independent reader), what we write round-trips and has the
fields, classes, versions and storage layout of the original's files, old and CUDA
variants load, and the JSON is written the way lua-cjson writes it."""
import json
import math
import os
import re
import struct

import numpy as np
import pytest
import torch
import torchfile

from conftest import GOLDEN, LEGACY
from torchrnn_py import checkpoint as ckpt
from torchrnn_py.errors import TorchRNNError
from torchrnn_py.model import LanguageModel
from torchrnn_py.rng import TorchGenerator
from torchrnn_py.t7 import TorchObject, read_t7, write_t7
from torchrnn_py.vocab import Vocab

CHECKPOINTS = GOLDEN / "checkpoints"


# -- an independent float64 forward pass from torchfile's view of a checkpoint ---------------

def _tf_model(path):
    root = torchfile.load(str(path))
    return root[b"model"]


def _tf_modules(lm):
    return list(lm._obj[b"net"]._obj[b"modules"])


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def reference_probs(lm, ids):
    """Next-token probabilities after the 1-based ids, evaluation mode, zero states."""
    h = None
    for module in _tf_modules(lm):
        name = module._typename.decode()
        f = module._obj
        if name == "nn.LookupTable":
            h = f[b"weight"].astype(np.float64)[np.asarray(ids) - 1]          # (T, D)
        elif name == "nn.LSTM":
            W, b = f[b"weight"].astype(np.float64), f[b"bias"].astype(np.float64)
            D, H = f[b"input_dim"], f[b"hidden_dim"]
            hp, cp = np.zeros(H), np.zeros(H)
            out = []
            for x in h:
                a = x @ W[:D] + hp @ W[D:] + b
                i, fg, o = _sigmoid(a[:H]), _sigmoid(a[H:2 * H]), _sigmoid(a[2 * H:3 * H])
                g = np.tanh(a[3 * H:])
                cp = fg * cp + i * g
                hp = o * np.tanh(cp)
                out.append(hp)
            h = np.array(out)
        elif name == "nn.VanillaRNN":
            W, b = f[b"weight"].astype(np.float64), f[b"bias"].astype(np.float64)
            D, H = f[b"input_dim"], f[b"hidden_dim"]
            hp, out = np.zeros(H), []
            for x in h:
                hp = np.tanh(x @ W[:D] + hp @ W[D:] + b)
                out.append(hp)
            h = np.array(out)
        elif name == "nn.BatchNormalization":
            mean = f[b"running_mean"].astype(np.float64)
            var = f[b"running_var"].astype(np.float64)
            h = (h - mean) / np.sqrt(var + f[b"eps"]) * f[b"weight"] + f[b"bias"]
        elif name == "nn.Dropout":
            if not f.get(b"v2"):
                h = h * (1 - f[b"p"])
        elif name == "nn.Linear":
            h = h @ f[b"weight"].astype(np.float64).T + f[b"bias"].astype(np.float64)
        elif name == "nn.View":
            pass
        else:
            raise AssertionError(name)
    scores = h[-1]
    e = np.exp(scores - scores.max())
    return e / e.sum()


LEGACY_MODELS = {
    "dna_eli_checkpoint_1000.t7": dict(num_layers=3, rnn_size=128, wordvec_dim=64,
                                       dropout=0.05, vocab_size=5),
    "placenames_checkpoint_8450.t7": dict(num_layers=2, rnn_size=128, wordvec_dim=64,
                                          dropout=0.0, vocab_size=84),
    "liqingzhao_checkpoint_1050.t7": dict(num_layers=2, rnn_size=128, wordvec_dim=64,
                                          dropout=0.6, vocab_size=1037),
}


@pytest.mark.parametrize("name", sorted(LEGACY_MODELS))
def test_legacy_checkpoint_loads_and_predicts(name):
    path = LEGACY / name
    loaded = ckpt.load_checkpoint(path)
    model = loaded["model"]
    arch = LEGACY_MODELS[name]
    assert model.model_type == "lstm"
    assert model.num_layers == arch["num_layers"]
    assert model.rnn_size == arch["rnn_size"]
    assert model.wordvec_dim == arch["wordvec_dim"]
    assert model.vocab_size == arch["vocab_size"]
    assert model.dropout == pytest.approx(arch["dropout"])

    lm = _tf_model(path)
    tokens = [t.decode("utf-8") for t in lm._obj[b"idx_to_token"]]
    assert [model.idx_to_token[i] for i in range(1, len(tokens) + 1)] == tokens
    if name.startswith("liqingzhao"):
        assert any(ord(c) > 0x4E00 for c in "".join(tokens))     # Chinese tokens

    V = len(tokens)
    ids = [(7 * k + 3) % V + 1 for k in range(30)]
    text = "".join(tokens[i - 1] for i in ids)
    encoded = model.encode(text)
    assert encoded.tolist() == ids

    model.eval()
    model.reset_states()
    with torch.no_grad():
        scores = model(encoded.view(1, -1))
    probs = torch.softmax(scores[0, -1].double(), -1).numpy()
    expected = reference_probs(lm, ids)
    np.testing.assert_allclose(probs, expected, rtol=0, atol=1e-5)
    assert probs.argmax() == expected.argmax()


def test_legacy_json_agrees_with_t7():
    loaded = ckpt.load_checkpoint(LEGACY / "placenames_checkpoint_8450.t7")
    data = ckpt.read_checkpoint_json(LEGACY / "placenames_checkpoint_8450.json")
    assert loaded["i"] == data["i"] == 8450
    assert len(loaded["train_loss_history"]) == len(data["train_loss_history"])
    np.testing.assert_allclose(loaded["train_loss_history"][:50],
                               data["train_loss_history"][:50], rtol=1e-12)
    assert loaded["forward_backward_times"] == [] == data["forward_backward_times"]
    assert loaded["opt"]["rnn_size"] == data["opt"]["rnn_size"] == 128


# -- save / load round trip -----------------------------------------------------------------

TOKENS = ["a", "b", "\n", " ", "/", '"', "é", "中", "\\", "z"]


def _model(model_type="lstm", batchnorm=0, dropout=0.0, seed=1):
    model = LanguageModel(Vocab(TOKENS), model_type, wordvec_size=5, rnn_size=6, num_layers=2,
                          dropout=dropout, batchnorm=batchnorm, generator=TorchGenerator(seed))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in model.batchnorms:
            bn.running_mean.copy_(torch.randn(6, generator=g))
            bn.running_var.copy_(torch.rand(6, generator=g) + 0.5)
    return model


def _checkpoint(model):
    return {"model": model, "i": 7,
            "opt": {"batch_size": 3, "seq_length": 4, "checkpoint_name": "cv/x", "dropout": 0},
            "train_loss_history": [4.5, 4.25, 4.125], "val_loss_history": [4.0],
            "val_loss_history_it": [3], "forward_backward_times": [], "memory_usage": []}


@pytest.mark.parametrize("kind", ["lstm", "rnn", "bn_dropout"])
def test_save_load_round_trip(kind, tmp_path):
    if kind == "bn_dropout":
        model = _model("lstm", batchnorm=1, dropout=0.3)
    else:
        model = _model(kind)
    path = tmp_path / "cp.t7"
    ckpt.save_checkpoint(path, _checkpoint(model))
    assert (tmp_path / "cp.json").exists()
    loaded = ckpt.load_checkpoint(path)
    back = loaded["model"]
    assert back.vocab == model.vocab
    assert [back.idx_to_token[i] for i in range(1, 11)] == TOKENS
    for attr in ("model_type", "wordvec_dim", "rnn_size", "num_layers", "dropout",
                 "batchnorm", "vocab_size"):
        assert getattr(back, attr) == getattr(model, attr), attr
    ours, theirs = model.state_dict(), back.state_dict()
    assert set(ours) == set(theirs)
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key
    for d in back.dropouts:
        assert d.p == pytest.approx(0.3) and d.v2 is True
    assert loaded["i"] == 7
    assert loaded["train_loss_history"] == [4.5, 4.25, 4.125]
    assert loaded["val_loss_history_it"] == [3]
    assert loaded["forward_backward_times"] == [] and loaded["memory_usage"] == []
    assert loaded["opt"]["checkpoint_name"] == "cv/x"
    # same predictions
    model.eval()
    back.eval()
    x = torch.tensor([[1, 2, 3, 7, 8, 10]])
    with torch.no_grad():
        torch.testing.assert_close(back(x), model(x), rtol=0, atol=0)


def test_bare_language_model_file_loads(tmp_path):
    model = _model("rnn")
    path = tmp_path / "bare.t7"
    write_t7(path, ckpt.model_to_t7(model))
    back = ckpt.load_checkpoint(path)["model"]
    for key, value in model.state_dict().items():
        assert torch.equal(back.state_dict()[key], value)


# -- what we write, against the original's files ----------------------------------------------

def _parse_summary():
    """module_fields.txt's SUMMARY lines: top-level keys, model keys, and per module
    (class, {field: value text})."""
    top, model_keys, modules = None, None, {}
    for line in (GOLDEN / "module_fields.txt").read_text().splitlines():
        if not line.startswith("## SUMMARY: "):
            continue
        body = line[len("## SUMMARY: "):]
        if body.startswith("checkpoint top-level keys: "):
            top = set(body.split(": ", 1)[1].split(", "))
        elif body.startswith("checkpoint.model keys: "):
            model_keys = set(body.split(": ", 1)[1].split(", "))
        else:
            m = re.match(r"net\.modules\[(\d+)\] (\S+) : (.*)$", body)
            if m:
                fields = {}
                for item in m.group(3).split("  "):
                    key, value = item.strip().split("=", 1)
                    fields[key] = value
                modules[int(m.group(1))] = (m.group(2), fields)
    assert top and model_keys and len(modules) == 6
    return top, model_keys, modules


def _parse_minimal_fields():
    """minimal_fields_for_sample_lua.txt: class -> fields sample.lua needs."""
    text = (GOLDEN / "minimal_fields_for_sample_lua.txt").read_text()
    text = text.split("All numbers are serialized")[0]
    entries, current = {}, None
    for line in text.splitlines():
        m = re.match(r"^(nn\.\w+|every module)\s+: (.*)$", line)
        if m:
            current = m.group(1)
            entries[current] = m.group(2)
        elif current and line.startswith(" ") and line.strip():
            entries[current] += " " + line.strip()
        else:
            current = None
    fields = {}
    for cls, desc in entries.items():
        while re.search(r"\([^()]*\)", desc):
            desc = re.sub(r"\([^()]*\)", "", desc)
        desc = desc.split(". ")[0]
        names = set()
        for part in re.split(r",| AND ", desc):
            word = part.strip().split("=")[0].strip()
            if re.fullmatch(r"[A-Za-z_]\w*", word):
                names.add(word)
        fields[cls] = names
    # guard against a parse that finds nothing
    assert {"weight", "bias", "h0", "c0", "remember_states"} <= fields["nn.LSTM"]
    assert {"p", "v2"} <= fields["nn.Dropout"]
    assert {"size", "numInputDims"} <= fields["nn.View"]
    assert {"running_var", "eps", "affine"} <= fields["nn.BatchNormalization"]
    assert {"idx_to_token", "net", "rnns", "view1", "bn_view_out"} <= fields["nn.LanguageModel"]
    assert fields["every module"] == {"output"}
    return fields


def _resave(name, tmp_path):
    loaded = ckpt.load_checkpoint(CHECKPOINTS / f"{name}.t7")
    path = tmp_path / f"{name}_ours.t7"
    ckpt.save_checkpoint(path, loaded)
    return path


def _fields(obj):
    return {k.decode() for k in obj._obj}


_TENSOR_DTYPES = {"Float": np.float32, "Int": np.int32, "Long": np.int64, "Double": np.float64}


def _check_summary_value(value, text, where):
    m = re.fullmatch(r"torch\.(\w+)Tensor\(([\dx]*)\)", text)
    if m:
        shape = tuple(int(s) for s in m.group(2).split("x")) if m.group(2) else (0,)
        assert isinstance(value, np.ndarray), where
        assert value.dtype == _TENSOR_DTYPES[m.group(1)], where
        assert value.shape == shape, where
        return
    m = re.fullmatch(r"torch\.LongStorage\{([-\d,]*)\}", text)
    if m:
        assert [int(v) for v in value] == [int(v) for v in m.group(1).split(",")], where
        return
    if text in ("true", "false"):
        assert value is (text == "true"), where
    elif re.fullmatch(r"-?\d+", text):
        assert value == int(text) and not isinstance(value, bool), where
    else:
        assert value == text.encode(), where


def test_our_file_has_the_fields_of_the_original(tmp_path):
    top, model_keys, modules = _parse_summary()
    path = _resave("lstm_small_cp_159", tmp_path)
    root = torchfile.load(str(path))
    assert {k.decode() for k in root} == top
    lm = root[b"model"]
    assert lm._typename == b"nn.LanguageModel"
    assert _fields(lm) == model_keys
    ours = _tf_modules(lm)
    assert len(ours) == len(modules)
    for k, (cls, fields) in modules.items():
        module = ours[k - 1]
        assert module._typename.decode() == cls, k
        assert _fields(module) == set(fields), (k, cls)
        for key, text in fields.items():
            _check_summary_value(module._obj[key.encode()], text, f"{cls}.{key}")


@pytest.mark.parametrize("name", ["lstm_small_cp_159", "rnn_small_cp_159",
                                  "lstm_bn_dropout_cp_159"])
def test_our_fields_match_golden_file_per_class(name, tmp_path):
    minimal = _parse_minimal_fields()
    golden_root = torchfile.load(str(CHECKPOINTS / f"{name}.t7"))
    ours_root = torchfile.load(str(_resave(name, tmp_path)))
    assert set(ours_root) == set(golden_root)
    g_lm, o_lm = golden_root[b"model"], ours_root[b"model"]
    assert _fields(o_lm) == _fields(g_lm)
    assert minimal["nn.LanguageModel"] <= _fields(o_lm)
    g_net, o_net = g_lm._obj[b"net"], o_lm._obj[b"net"]
    assert o_net._typename == g_net._typename == b"nn.Sequential"
    assert _fields(o_net) == _fields(g_net)
    assert minimal["nn.Sequential"] | minimal["every module"] <= _fields(o_net)
    g_mods, o_mods = _tf_modules(g_lm), _tf_modules(o_lm)
    assert [m._typename for m in o_mods] == [m._typename for m in g_mods]
    for g, o in zip(g_mods, o_mods):
        cls = o._typename.decode()
        assert _fields(o) == _fields(g), cls
        assert minimal.get(cls, set()) | minimal["every module"] <= _fields(o), cls
        for key in ("numInputDims", "numElements", "input_dim", "hidden_dim", "p", "v2",
                    "remember_states", "eps", "momentum", "affine"):
            if key.encode() in g._obj:
                assert o._obj[key.encode()] == g._obj[key.encode()], (cls, key)
        if cls == "nn.View":
            assert list(o._obj[b"size"]) == list(g._obj[b"size"])
        if cls == "nn.Dropout":
            assert o._obj[b"v2"] is True
        for key, value in g._obj.items():
            if isinstance(value, np.ndarray) and key not in (b"gradWeight", b"gradBias"):
                assert o._obj[key].dtype == value.dtype, (cls, key)
                assert o._obj[key].shape == value.shape, (cls, key)
                if key in (b"weight", b"bias", b"running_mean", b"running_var"):
                    np.testing.assert_array_equal(o._obj[key], value)
    # rnns / view1 / view2 / bn_view_* are the same objects as the net's modules
    rnn_mods = [m for m in o_mods if m._typename in (b"nn.LSTM", b"nn.VanillaRNN")]
    assert [id(m) for m in o_lm._obj[b"rnns"]] == [id(m) for m in rnn_mods]
    views = [m for m in o_mods if m._typename == b"nn.View"]
    assert o_lm._obj[b"view1"] is views[-2] and o_lm._obj[b"view2"] is views[-1]
    assert len(o_lm._obj[b"bn_view_in"]) == len(g_lm._obj[b"bn_view_in"])


def _walk(obj, found):
    """Collect every TorchObject reachable from a read_t7 value."""
    stack, seen = [obj], set()
    while stack:
        value = stack.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, TorchObject):
            found.append(value)
            stack.extend(value.fields.values())
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
    return found


def _class_strings(path):
    return set(re.findall(rb"torch\.[A-Za-z]+(?:Tensor|Storage)", path.read_bytes()))


@pytest.mark.parametrize("name", ["lstm_small_cp_159", "rnn_small_cp_159",
                                  "lstm_bn_dropout_cp_159"])
def test_class_names_and_versions_equal_golden(name, tmp_path):
    ours_path = _resave(name, tmp_path)
    golden = {(o.class_name, o.version) for o in _walk(read_t7(CHECKPOINTS / f"{name}.t7"), [])}
    ours = {(o.class_name, o.version) for o in _walk(read_t7(ours_path), [])}
    assert ours == golden
    versions = dict(golden)
    assert versions["nn.LookupTable"] == 4
    if "bn" in name:
        assert versions["nn.BatchNormalization"] == 2
    assert all(v == 1 for c, v in golden if c not in ("nn.LookupTable",
                                                      "nn.BatchNormalization"))
    assert _class_strings(ours_path) == _class_strings(CHECKPOINTS / f"{name}.t7")


def _parameter_tensors(root):
    """(parameters, gradients) in nn.LanguageModel:parameters() order."""
    params, grads = [], []
    for module in root["model"]["net"]["modules"].values() \
            if isinstance(root["model"]["net"]["modules"], dict) \
            else root["model"]["net"]["modules"]:
        for p, g in (("weight", "gradWeight"), ("bias", "gradBias")):
            if p in module and module[p].numel() > 0:
                params.append(module[p])
                grads.append(module[g])
    return params, grads


@pytest.mark.parametrize("name", ["lstm_small_cp_159", "lstm_bn_dropout_cp_159"])
def test_parameters_view_one_storage_like_get_parameters(name, tmp_path):
    for path in (CHECKPOINTS / f"{name}.t7", _resave(name, tmp_path)):
        params, grads = _parameter_tensors(read_t7(path))
        assert len(params) >= 6
        for group in (params, grads):
            ptrs = {t.untyped_storage().data_ptr() for t in group}
            assert len(ptrs) == 1, path
            total = sum(t.numel() for t in group)
            assert group[0].untyped_storage().nbytes() == 4 * total
            offset = 0
            for t in group:
                assert t.dtype == torch.float32
                assert t.storage_offset() == offset
                assert t.is_contiguous()
                offset += t.numel()
        assert params[0].untyped_storage().data_ptr() != grads[0].untyped_storage().data_ptr()


# -- variants found in the wild -------------------------------------------------------------

def test_old_batchnorm_with_running_std(tmp_path):
    source = CHECKPOINTS / "lstm_bn_dropout_cp_159.t7"
    root = read_t7(source)
    bns = [o for o in _walk(root, []) if o.class_name == "nn.BatchNormalization"]
    assert len(bns) == 2
    for bn in bns:
        var = bn.fields.pop("running_var")
        bn.fields["running_std"] = (1.0 / torch.sqrt(var.double() + bn["eps"])).float()
    path = tmp_path / "old_bn.t7"
    write_t7(path, root)
    assert b"running_var" not in path.read_bytes()
    old = ckpt.load_checkpoint(path)["model"]
    new = ckpt.load_checkpoint(source)["model"]
    for a, b in zip(old.batchnorms, new.batchnorms):
        np.testing.assert_allclose(a.running_var.numpy(), b.running_var.numpy(), rtol=1e-6)
        assert torch.equal(a.running_mean, b.running_mean)
        assert torch.equal(a.weight, b.weight)


def _string_record(text):
    raw = text.encode()
    return struct.pack("<i", len(raw)) + raw


def test_cuda_class_names_load_on_cpu(tmp_path):
    source = CHECKPOINTS / "lstm_small_cp_159.t7"
    data = source.read_bytes()
    count = 0
    for cpu, cuda in (("torch.FloatTensor", "torch.CudaTensor"),
                      ("torch.FloatStorage", "torch.CudaStorage")):
        count += data.count(_string_record(cpu))
        data = data.replace(_string_record(cpu), _string_record(cuda))
    assert count > 10
    assert b"torch.Float" not in data
    path = tmp_path / "cuda.t7"
    path.write_bytes(data)
    gpu = ckpt.load_checkpoint(path)["model"]
    cpu = ckpt.load_checkpoint(source)["model"]
    assert next(gpu.parameters()).device.type == "cpu"
    for key, value in cpu.state_dict().items():
        assert torch.equal(gpu.state_dict()[key], value), key


# -- JSON, as lua-cjson writes it --------------------------------------------------------------

def test_cjson_strings():
    assert ckpt.cjson_dumps("a/b") == '"a\\/b"'
    assert ckpt.cjson_dumps('q"\\') == '"q\\"\\\\"'
    assert ckpt.cjson_dumps("\b\t\n\f\r") == '"\\b\\t\\n\\f\\r"'
    assert ckpt.cjson_dumps("\x00\x01\x0b\x1f\x7f") == '"\\u0000\\u0001\\u000b\\u001f\\u007f"'
    assert ckpt.cjson_dumps("é中 ~") == '"é中 ~"'            # UTF-8 left as is


@pytest.mark.parametrize("value", [0.1, 1 / 3, 2.0, 123, 1e20, 1e-7, -2.5e-300,
                                   123456789012345678, 4.1394605636597, 0.0])
def test_cjson_numbers(value):
    assert ckpt.cjson_dumps(value) == "%.14g" % value


def test_cjson_structures():
    assert ckpt.cjson_dumps([]) == "{}"
    assert ckpt.cjson_dumps({}) == "{}"
    assert ckpt.cjson_dumps([1, [2.5, 3]]) == "[1,[2.5,3]]"
    assert ckpt.cjson_dumps({"a": True, "b": False, "c": None}) == \
        '{"a":true,"b":false,"c":null}'
    out = ckpt.cjson_dumps({"checkpoint_name": "cv/checkpoint", "h": [1 / 3],
                            "forward_backward_times": []})
    assert out == ('{"checkpoint_name":"cv\\/checkpoint","h":[%s],'
                   '"forward_backward_times":{}}' % ("%.14g" % (1 / 3)))
    assert json.loads(out)["checkpoint_name"] == "cv/checkpoint"


def test_read_checkpoint_json_accepts_both_empty_forms(tmp_path):
    for empty in ("{}", "[]"):
        path = tmp_path / "cp.json"
        path.write_text('{"i":3,"forward_backward_times":%s,"memory_usage":%s,'
                        '"val_loss_history":%s,"train_loss_history":[1.5]}' % ((empty,) * 3))
        data = ckpt.read_checkpoint_json(path)
        assert data["forward_backward_times"] == [] and data["memory_usage"] == []
        assert data["val_loss_history"] == [] and data["train_loss_history"] == [1.5]


def test_golden_json_reads():
    data = ckpt.read_checkpoint_json(CHECKPOINTS / "lstm_small_cp_159.json")
    assert data["forward_backward_times"] == []
    assert data["opt"]["checkpoint_name"] == "lstm_small/cp"
    assert data["val_loss_history_it"] == [100, 159]


# -- not a checkpoint -------------------------------------------------------------------------

def test_load_checkpoint_rejects_random_bytes(tmp_path):
    path = tmp_path / "noise.t7"
    path.write_bytes(np.random.default_rng(3).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(TorchRNNError, match="noise.t7"):
        ckpt.load_checkpoint(path)


def test_load_checkpoint_rejects_plain_table(tmp_path):
    path = tmp_path / "table.t7"
    write_t7(path, {"i": 3.0, "model": "nothing here"})
    with pytest.raises(TorchRNNError, match="table.t7"):
        ckpt.load_checkpoint(path)


def test_load_checkpoint_missing_file(tmp_path):
    with pytest.raises(TorchRNNError, match="absent.t7"):
        ckpt.load_checkpoint(tmp_path / "absent.t7")


def test_load_checkpoint_rejects_wrong_layout(tmp_path):
    root = read_t7(CHECKPOINTS / "rnn_small_cp_159.t7")
    modules = root["model"]["net"]["modules"]
    del modules[max(modules)]                          # drop the last nn.View
    path = tmp_path / "broken.t7"
    write_t7(path, root)
    with pytest.raises(TorchRNNError, match="broken.t7"):
        ckpt.load_checkpoint(path)


# -- hostile files: declared sizes, cycles, nesting, dropout (issue 9, section 6) ----------

def _hostile_file(tmp_path, change, extra=None):
    """Our small 2-layer LSTM checkpoint with ``change(lm)`` applied to its
    nn.LanguageModel TorchObject (and ``extra`` fields added to the root table)."""
    model = _model("lstm", dropout=0.3)
    lm = ckpt.model_to_t7(model)
    change(lm)
    path = tmp_path / "hostile.t7"
    write_t7(str(path), dict({"model": lm, "i": 1.0, "opt": {"batch_size": 1.0}}, **(extra or {})))
    return str(path)


def _modules(lm):
    return lm.fields["net"].fields["modules"]


def _stride0(*shape):
    return torch.zeros(1).expand(*shape)       # one stored number, a huge declared tensor


@pytest.fixture
def no_model_built(monkeypatch):
    built = []

    def spy(*args, **kwargs):
        built.append(args)
        return LanguageModel(*args, **kwargs)

    monkeypatch.setattr(ckpt.torch7_graph, "LanguageModel", spy)
    return built


def test_mismatched_shapes_are_refused_before_the_model_is_built(tmp_path, no_model_built):
    def wide_embedding(lm):       # D = 200000 would make each LSTM weight 200006 x 24
        _modules(lm)[0].fields["weight"] = _stride0(len(TOKENS), 200000)
    path = _hostile_file(tmp_path, wide_embedding)
    assert os.path.getsize(path) < 64 * 1024
    with pytest.raises(TorchRNNError) as info:
        ckpt.load_checkpoint(path)
    message = str(info.value)
    assert message.startswith(path + ": not a usable torch-rnn model: nn.LSTM number 1.weight "
                                     "has shape (11, 24), expected (200006, 24)"), message
    assert "\n" not in message and no_model_built == []


def test_consistent_stride0_weights_are_refused_without_allocating(tmp_path, no_model_built):
    V, D, H = len(TOKENS), 1000, 500

    def overlapping(lm):          # every shape agrees; every weight is one stored number
        modules = _modules(lm)
        modules[0].fields["weight"] = _stride0(V, D)
        rnns = [m for m in modules if m.class_name == "nn.LSTM"]
        for index, rnn in enumerate(rnns):
            rnn.fields["weight"] = _stride0((D if index == 0 else H) + H, 4 * H)
            rnn.fields["bias"] = _stride0(4 * H)
        linear = next(m for m in modules if m.class_name == "nn.Linear")
        linear.fields["weight"], linear.fields["bias"] = _stride0(V, H), _stride0(V)
    path = _hostile_file(tmp_path, overlapping)
    assert os.path.getsize(path) < 64 * 1024
    with pytest.raises(TorchRNNError, match=r"^.*hostile\.t7: not a usable torch-rnn model: "
                                            r"LookupTable\.weight declares 10000 numbers but its "
                                            r"storage holds only 1 \(an overlapping"):
        ckpt.load_checkpoint(path)
    assert no_model_built == []


def test_weights_sharing_too_small_a_storage_are_refused(tmp_path):
    def shared(lm):               # each weight fits its storage, but all overlap one another
        block = torch.zeros(300)
        for m in _modules(lm):
            for name in ("weight", "bias"):
                if m.class_name in ("nn.LookupTable", "nn.LSTM", "nn.Linear") \
                        and name in m.fields:
                    shape = m.fields[name].shape
                    m.fields[name] = block[:math.prod(shape)].view(shape)
    path = _hostile_file(tmp_path, shared)
    with pytest.raises(TorchRNNError, match="the weights declare .* numbers but the file stores "
                                            "only .* \\(overlapping views\\)$"):
        ckpt.load_checkpoint(path)


def test_real_checkpoints_pass_the_storage_bound(tmp_path):
    model = _model("lstm", batchnorm=1, dropout=0.3)
    ckpt.save_checkpoint(str(tmp_path / "cp.t7"), _checkpoint(model))
    loaded = ckpt.load_checkpoint(str(tmp_path / "cp.t7"))["model"]
    assert torch.equal(loaded.linear.weight, model.linear.weight)


def test_cyclic_opt_is_refused_in_one_line(tmp_path):
    opt = {"batch_size": 1.0}
    opt["self"] = opt
    path = _hostile_file(tmp_path, lambda lm: None, {"opt": opt})
    with pytest.raises(TorchRNNError) as info:
        ckpt.load_checkpoint(path)
    assert str(info.value) == (f"{path}: the checkpoint's field 'opt' contains itself "
                               f"(a cycle of tables); refusing it")


def test_shared_tables_are_converted_once():
    inner = {"a": 1.0}
    value = ckpt.from_lua({"x": inner, "y": {1: inner, 2: inner}})
    assert value == {"x": {"a": 1}, "y": [{"a": 1}, {"a": 1}]}
    assert value["x"] is value["y"][0]


def test_deep_nesting_in_fields_is_refused_in_one_line(tmp_path):
    deep = leaf = {}
    for _ in range(3000):
        leaf["next"] = {}
        leaf = leaf["next"]
    path = _hostile_file(tmp_path, lambda lm: None, {"notes": deep})
    with pytest.raises(TorchRNNError, match=r"field 'notes' has tables nested more than 100 "
                                            r"levels deep; refusing it$"):
        ckpt.load_checkpoint(path)
    shallow = leaf = {}
    for _ in range(ckpt.MAX_FIELD_DEPTH - 1):
        leaf["next"] = {}
        leaf = leaf["next"]
    value, depth = ckpt.from_lua(shallow), 0
    while value:
        value, depth = value["next"], depth + 1
    assert depth == ckpt.MAX_FIELD_DEPTH - 1


@pytest.mark.parametrize("p", [1.0, 1.5, -0.25])
def test_dropout_p_outside_its_range_is_one_line(tmp_path, p):
    def bad_dropout(lm):
        for m in _modules(lm):
            if m.class_name == "nn.Dropout":
                m.fields["p"] = p
    path = _hostile_file(tmp_path, bad_dropout)
    with pytest.raises(TorchRNNError) as info:
        ckpt.load_checkpoint(path)
    assert str(info.value) == (f"{path}: not a usable torch-rnn model: nn.Dropout.p should be "
                               f"in [0, 1), found {p}")


def test_dropout_zero_in_the_first_layer_only_loads(tmp_path):
    def first_zero(lm):
        next(m for m in _modules(lm) if m.class_name == "nn.Dropout").fields["p"] = 0.0
    model = ckpt.load_checkpoint(_hostile_file(tmp_path, first_zero))["model"]
    assert [d.p for d in model.dropouts] == [0.0, 0.3]


def test_checkpoint_object_round_trips_byte_for_byte(tmp_path):
    """A Checkpoint read and saved again writes the same bytes (.t7 and .json), keeps train's
    field order, and keeps the resume state out of the JSON."""
    model = _model("lstm", batchnorm=1, dropout=0.3)
    first = ckpt.Checkpoint(model, **{k: v for k, v in _checkpoint(model).items()
                                      if k != "model"},
                            resume=ckpt.ResumeState({"version": 1, "elapsed": 2.5}))
    first.save(str(tmp_path / "a.t7"))
    loaded = ckpt.load_checkpoint(tmp_path / "a.t7")
    assert list(loaded)[:7] == list(ckpt.HISTORY_KEYS) + ["opt", "i"]
    assert loaded.i == 7 and loaded.resume.table["elapsed"] == 2.5
    loaded.save(str(tmp_path / "b.t7"))
    for ext in ("t7", "json"):
        assert (tmp_path / f"a.{ext}").read_bytes() == (tmp_path / f"b.{ext}").read_bytes()
    assert ckpt.RESUME_FIELD not in json.loads((tmp_path / "a.json").read_text())


def test_model_built_without_init_draws_nothing():
    gen, fresh = TorchGenerator(3), TorchGenerator(3)
    LanguageModel(Vocab(TOKENS), "lstm", 4, 6, 1, generator=gen, init=False)
    assert gen.uniform(5).tolist() == fresh.uniform(5).tolist()     # nothing was drawn
