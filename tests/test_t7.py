"""Tests of the Torch7 (.t7) reader and writer against real checkpoints and hostile inputs."""
import contextlib
import json
import math
import os
import random
import struct
import time
import tracemalloc

import numpy as np
import pytest
import torch
import torchfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from torchrnn_py import t7
from torchrnn_py.errors import TorchRNNError
from torchrnn_py.t7 import (LuaFunction, Storage, T7FormatError, TorchObject, dumps_t7,
                            loads_t7, read_t7, tensor_class_name, write_t7)

from conftest import GOLDEN, LEGACY, PREPROCESS

GOLDEN_FILES = sorted((GOLDEN / "checkpoints").glob("*.t7"))
LEGACY_FILES = sorted(LEGACY.glob("*.t7"))
REAL_FILES = LEGACY_FILES + GOLDEN_FILES
LSTM_159 = GOLDEN / "checkpoints" / "lstm_small_cp_159.t7"
RNN_159 = GOLDEN / "checkpoints" / "rnn_small_cp_159.t7"
LIQINGZHAO = LEGACY / "liqingzhao_checkpoint_1050.t7"


def _ids(paths):
    return [p.name for p in paths]


# --- a tiny independent encoder for hand-made files (follows torch7's File.lua) -------------

def i32(v, e="<"):
    return struct.pack(e + "i", v)


def i64(v, e="<"):
    return struct.pack(e + "q", v)


def f64(v, e="<"):
    return struct.pack(e + "d", v)


def lua_string(raw):
    return i32(2) + i32(len(raw)) + raw


def lua_number(x):
    return i32(1) + f64(x)


def lua_table(index, pairs):
    return i32(3) + i32(index) + i32(len(pairs)) + b"".join(k + v for k, v in pairs)


def torch_header(index, class_name, version=b"V 1"):
    out = i32(4) + i32(index) + i32(len(version)) + version
    if version.startswith(b"V "):
        out += i32(len(class_name)) + class_name
    return out


def storage_bytes(index, class_name, count, payload):
    return torch_header(index, class_name) + i64(count) + payload


def tensor_bytes(index, class_name, sizes, strides, offset, storage):
    return (torch_header(index, class_name) + i32(len(sizes)) + b"".join(map(i64, sizes)) +
            b"".join(map(i64, strides)) + i64(offset) + storage)


# --- comparing our graph with torchfile's ------------------------------------------------------

class GraphComparer:
    """Walks our object graph and torchfile's in step; sharing must correspond one to one."""

    def __init__(self):
        self.pairs = {}
        self.storage_pairs = {}
        self.reverse_storage = {}
        self.keep = []

    def same(self, ours, theirs, where="root"):
        if isinstance(ours, int) and not isinstance(ours, bool):  # an integral table key
            assert isinstance(theirs, float) and theirs == ours, where
            return
        if ours is None or isinstance(ours, (bool, float)):
            assert type(ours) is type(theirs), where
            assert ours == theirs or (math.isnan(ours) and math.isnan(theirs)), where
            return
        if isinstance(ours, str):
            assert ours.encode("utf-8", "surrogateescape") == theirs, where
            return
        seen = self.pairs.get(id(ours))
        if seen is not None:
            assert seen is theirs, f"{where}: sharing differs"
            return
        self.pairs[id(ours)] = theirs
        self.keep.append(ours)
        if isinstance(ours, TorchObject):
            assert isinstance(theirs, torchfile.TorchObject), where
            assert ours.class_name == theirs._typename.decode(), where
            assert ours.version == theirs._version_number, where
            self.same(ours.fields, theirs._obj, f"{where}<{ours.class_name}>")
        elif isinstance(ours, dict):
            assert isinstance(theirs, dict), where
            their_keys = [self._key(k) for k in theirs]
            assert list(ours) == their_keys, where
            for key, their_key in zip(ours, theirs):
                self.same(key, their_key, f"{where}[{key!r}]:key")
                self.same(ours[key], theirs[their_key], f"{where}[{key!r}]")
        elif isinstance(ours, Storage):
            assert isinstance(theirs, np.ndarray) and theirs.ndim == 1, where
            assert ours.data.dtype == torch.from_numpy(theirs[:0]).dtype, where
            assert np.array_equal(ours.data.numpy(), theirs), where
        elif isinstance(ours, torch.Tensor):
            assert isinstance(theirs, np.ndarray), where
            assert ours.dtype == torch.from_numpy(np.ascontiguousarray(theirs)).dtype, where
            assert tuple(ours.shape) == theirs.shape, where
            assert np.array_equal(ours.numpy(), theirs, equal_nan=ours.is_floating_point()), \
                where
            if ours.numel():
                self._same_storage(ours, theirs, where)
        else:
            raise AssertionError(f"{where}: unexpected {type(ours)}")

    @staticmethod
    def _key(key):
        if isinstance(key, bytes):
            return key.decode("utf-8", "surrogateescape")
        if isinstance(key, float) and key.is_integer():
            return int(key)
        return key

    def _same_storage(self, ours, theirs, where):
        """Tensors share our storage exactly when torchfile's views share theirs."""
        ours_base = ours.untyped_storage().data_ptr()
        theirs_base = theirs.__array_interface__["data"][0] - \
            ours.storage_offset() * ours.element_size()
        assert self.storage_pairs.setdefault(ours_base, theirs_base) == theirs_base, where
        assert self.reverse_storage.setdefault(theirs_base, ours_base) == ours_base, where


def torchfile_load(path):
    return torchfile.load(str(path), use_list_heuristic=False, use_int_heuristic=False)


# --- real files --------------------------------------------------------------------------------

@pytest.mark.parametrize("path", REAL_FILES, ids=_ids(REAL_FILES))
def test_real_file_matches_torchfile(path):
    ours = read_t7(path)
    GraphComparer().same(ours, torchfile_load(path))
    assert ours["model"].class_name == "nn.LanguageModel"


@pytest.mark.parametrize("path", REAL_FILES, ids=_ids(REAL_FILES))
def test_real_file_rewrites_byte_for_byte(path):
    raw = path.read_bytes()
    assert dumps_t7(read_t7(path)) == raw


def test_real_file_loads_quickly():
    biggest = max(REAL_FILES, key=lambda p: p.stat().st_size)
    start = time.perf_counter()
    read_t7(biggest)
    assert time.perf_counter() - start < 1.0


def _reorder(obj, seen=None):
    """Reverse the key order of every table, so the writer cannot just replay the file."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, TorchObject):
        _reorder(obj.fields, seen)
    elif isinstance(obj, dict):
        items = list(obj.items())[::-1]
        obj.clear()
        obj.update(items)
        for key, value in items:
            _reorder(value, seen)


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=_ids(GOLDEN_FILES))
def test_golden_rewrite_in_another_order_is_read_alike_by_torchfile(path, tmp_path):
    ours = read_t7(path)
    _reorder(ours)
    out = tmp_path / "rewritten.t7"
    write_t7(out, ours)
    assert out.stat().st_size == path.stat().st_size
    again = read_t7(out)
    GraphComparer().same(again, torchfile_load(out))
    original = read_t7(path)
    _reorder(original)
    assert dumps_t7(again) == dumps_t7(original)


def test_lstm_weights_share_one_storage_as_getparameters_left_them():
    model = read_t7(LSTM_159)["model"]
    modules = model["net"]["modules"]
    lookup, lstm1, lstm2, linear = modules[1], modules[2], modules[3], modules[5]
    params = [lookup["weight"], lstm1["weight"], lstm1["bias"], lstm2["weight"], lstm2["bias"],
              linear["weight"], linear["bias"]]
    grads = [lookup["gradWeight"], lstm1["gradWeight"], lstm1["gradBias"], linear["gradBias"]]
    assert len({p.untyped_storage().data_ptr() for p in params}) == 1
    assert len({g.untyped_storage().data_ptr() for g in grads}) == 1
    assert params[0].untyped_storage().data_ptr() != grads[0].untyped_storage().data_ptr()
    # the byte walk: bias at storage offset 26561 (1-based), weight (96x256) at 1985
    bias, weight = lstm1["bias"], lstm1["weight"]
    assert bias.storage_offset() == 26560 and weight.storage_offset() == 1984
    assert tuple(weight.shape) == (96, 256) and weight.stride() == (256, 1)
    whole = weight.as_strided((63870,), (1,), 0)
    assert whole[:6].tolist() == pytest.approx([0.39512619376182556, 1.1947113275527954,
                                                -1.2910493612289429, -0.5179125070571899,
                                                -0.793161928653717, -0.3394363224506378],
                                               rel=0, abs=0)
    assert torch.equal(lookup["weight"].flatten()[:6], whole[:6])
    whole[26560] = 42.0
    assert bias[0].item() == 42.0
    # the same tensor object is referenced twice in the file (grad_x is gradInput)
    assert lstm1["grad_x"] is lstm1["gradInput"]


def test_view_sizes_are_long_storages():
    modules = read_t7(LSTM_159)["model"]["net"]["modules"]
    assert modules[4].class_name == "nn.View"
    size = modules[4]["size"]
    assert isinstance(size, Storage) and size.class_name == "torch.LongStorage"
    assert size.data.dtype == torch.int64 and size.tolist() == [1000, -1]
    assert modules[6]["size"].tolist() == [20, 50, -1]


def test_chinese_vocabulary_matches_preprocess_output_and_round_trips():
    checkpoint = read_t7(LIQINGZHAO)
    model = checkpoint["model"]
    vocab = json.loads((PREPROCESS / "li_qing_zhao.json").read_text(encoding="utf-8"))
    assert len(model["idx_to_token"]) == 1037
    assert {str(k): v for k, v in model["idx_to_token"].items()} == vocab["idx_to_token"]
    assert model["token_to_idx"] == {k: float(v) for k, v in vocab["token_to_idx"].items()}
    again = loads_t7(dumps_t7({"idx_to_token": model["idx_to_token"]}))
    assert again["idx_to_token"] == model["idx_to_token"]
    assert "常".encode("utf-8") in dumps_t7(model["idx_to_token"])
    history = json.loads((LEGACY / "liqingzhao_checkpoint_1050.json").read_text())
    ours = checkpoint["train_loss_history"]
    assert [ours[i + 1] for i in range(len(ours))] == pytest.approx(
        history["train_loss_history"], rel=1e-12)


# --- hand-built objects ------------------------------------------------------------------------

def test_cycles_shared_objects_lists_and_odd_strings_round_trip():
    inner = {"name": "inner"}
    root = {"a": inner, "b": inner, "list": [1, "two", None, True, 2.5],
            "bytes": b"\xff\xfe\x00raw", "surrogates": "caf\udce9", "unicode": "très 常",
            3: "three", 2.5: "float key", True: "bool key"}
    root["self"] = root
    obj = TorchObject("nn.Thing", {"parent": root, "n": 7})
    root["obj"] = obj
    again = loads_t7(dumps_t7(root))
    assert again["self"] is again
    assert again["a"] is again["b"] and again["a"] == {"name": "inner"}
    assert again["list"] == {1: 1.0, 2: "two", 3: None, 4: True, 5: 2.5}
    assert again["bytes"].encode("utf-8", "surrogateescape") == b"\xff\xfe\x00raw"
    assert again["surrogates"] == "caf\udce9" and again["unicode"] == "très 常"
    assert again[3] == "three" and again[2.5] == "float key" and again[True] == "bool key"
    assert again["obj"].class_name == "nn.Thing" and again["obj"]["parent"] is again
    assert again["obj"]["n"] == 7.0 and isinstance(again["obj"]["n"], float)


def test_tensors_viewing_one_block_share_one_written_storage():
    block = torch.arange(12, dtype=torch.float32)
    slice_, transposed = block[2:6], block.view(3, 4).t()
    data = dumps_t7({"block": block, "slice": slice_, "t": transposed, "again": slice_})
    assert data.count(b"torch.FloatStorage") == 1
    again = loads_t7(data)
    assert len({again[k].untyped_storage().data_ptr() for k in ("block", "slice", "t")}) == 1
    assert again["again"] is again["slice"]
    assert torch.equal(again["t"], transposed) and again["t"].stride() == (1, 4)
    assert again["slice"].storage_offset() == 2 and torch.equal(again["slice"], slice_)
    again["block"][3] = -1.0
    assert again["slice"][1].item() == -1.0


def test_storage_objects_and_tensors_on_them_share_one_written_storage():
    block = torch.arange(6, dtype=torch.int64)
    storage = Storage("torch.CudaLongStorage", block)
    for graph in ({"s": storage, "t": block[1:3]}, {"t": block[1:3], "s": storage}):
        data = dumps_t7(graph)
        assert data.count(b"torch.LongStorage") == 1 and b"Cuda" not in data
        again = loads_t7(data)
        assert again["s"].class_name == "torch.LongStorage"
        assert again["s"].tolist() == list(range(6))
        assert again["s"].data.data_ptr() == again["t"].untyped_storage().data_ptr()
    empty = Storage("torch.FloatStorage", torch.zeros(0))
    again = loads_t7(dumps_t7([empty, empty]))
    assert again[1] is again[2] and len(again[1]) == 0


@pytest.mark.parametrize("dtype,class_name", [
    (torch.float64, "torch.DoubleTensor"), (torch.float32, "torch.FloatTensor"),
    (torch.float16, "torch.HalfTensor"), (torch.int64, "torch.LongTensor"),
    (torch.int32, "torch.IntTensor"), (torch.int16, "torch.ShortTensor"),
    (torch.int8, "torch.CharTensor"), (torch.uint8, "torch.ByteTensor")])
def test_every_dtype_round_trips(dtype, class_name):
    tensor = (torch.arange(24) - 5).to(dtype).view(2, 3, 4)
    assert tensor_class_name(tensor) == class_name
    data = dumps_t7(tensor)
    assert class_name.encode() in data
    again = loads_t7(data)
    assert again.dtype == dtype and torch.equal(again, tensor)


def test_empty_and_scalar_tensors():
    empty = torch.zeros(0, 5)
    data = dumps_t7(empty)
    assert data == (torch_header(1, b"torch.FloatTensor") + i32(0) + i64(1) + i32(0))
    assert loads_t7(data).shape == (0,)
    assert loads_t7(dumps_t7(torch.tensor(3.5))).tolist() == [3.5]


def test_writer_rejects_what_torch7_cannot_hold():
    with pytest.raises(TypeError):
        dumps_t7(torch.zeros(2, dtype=torch.bool))
    with pytest.raises(TypeError):
        dumps_t7({"x": object()})
    with pytest.raises(ValueError):
        dumps_t7({None: 1})


def test_version_zero_objects_functions_and_storages_round_trip():
    data = lua_table(1, [
        (lua_string(b"old"), i32(4) + i32(2) + i32(6) + b"nn.Old" +
         lua_table(3, [(lua_string(b"x"), lua_number(1))])),
        (lua_string(b"f"), i32(8) + i32(4) + i32(5) + b"\x1bLJ\x02\x00" +
         lua_table(5, [(lua_number(1), lua_table(6, []))])),
        (lua_string(b"g"), i32(6) + i32(3) + b"abc" + i32(0)),
        (lua_string(b"s"), storage_bytes(7, b"torch.IntStorage", 2, i32(-3) + i32(9))),
    ])
    obj = loads_t7(data)
    assert obj["old"].class_name == "nn.Old" and obj["old"].version == 0
    assert isinstance(obj["f"], LuaFunction) and obj["f"].bytecode == b"\x1bLJ\x02\x00"
    assert obj["f"].upvalues == {1: {}}
    assert obj["g"].type_tag == 6 and obj["g"].upvalues is None
    assert obj["s"].class_name == "torch.IntStorage" and obj["s"].tolist() == [-3, 9]
    assert dumps_t7(obj) == data


@pytest.mark.parametrize("tensor_class,storage_class,dtype", [
    (b"torch.CudaTensor", b"torch.CudaStorage", torch.float32),
    (b"torch.CudaDoubleTensor", b"torch.CudaDoubleStorage", torch.float64),
    (b"torch.CudaLongTensor", b"torch.CudaLongStorage", torch.int64),
    (b"torch.CudaByteTensor", b"torch.CudaByteStorage", torch.uint8),
    (b"torch.CudaHalfTensor", b"torch.CudaHalfStorage", torch.float16),
    (b"torch.ClTensor", b"torch.ClStorage", torch.float32)])
def test_gpu_tensors_load_as_cpu_dtypes(tensor_class, storage_class, dtype):
    values = torch.tensor([1, 2, 3, 4], dtype=dtype)
    payload = values.numpy().astype(values.numpy().dtype.newbyteorder("<")).tobytes()
    data = tensor_bytes(1, tensor_class, [2, 2], [2, 1], 1,
                        storage_bytes(2, storage_class, 4, payload))
    tensor = loads_t7(data)
    assert tensor.dtype == dtype and tensor.device.type == "cpu"
    assert torch.equal(tensor, values.view(2, 2))
    cpu_class = tensor_class_name(tensor).encode()
    assert loads_t7(dumps_t7(tensor)).dtype == dtype and cpu_class in dumps_t7(tensor)


def test_four_byte_longs():
    checkpoint = read_t7(RNN_159)
    data = dumps_t7(checkpoint, long_size=4)
    assert len(data) < RNN_159.stat().st_size
    assert dumps_t7(loads_t7(data, long_size=4)) == RNN_159.read_bytes()
    with pytest.raises(T7FormatError, match="long_size=4"):
        loads_t7(data)


def test_ascii_files_are_read():
    handmade = (b"3\n1\n2\n"
                b"2\n1\nw\n"
                b"4\n2\n3\nV 1\n17\ntorch.FloatTensor\n2\n2 3\n3 1\n1\n"
                b"4\n3\n3\nV 1\n18\ntorch.FloatStorage\n6\n1 2 3 4 5 0.5\n"
                b"1\n1\n5\n1\n")
    obj = loads_t7(handmade)
    assert obj[1] is True
    assert torch.equal(obj["w"], torch.tensor([[1, 2, 3], [4, 5, 0.5]]))
    assert dumps_t7(obj, mode="ascii") == handmade
    checkpoint = read_t7(RNN_159)
    assert dumps_t7(loads_t7(dumps_t7(checkpoint, mode="ascii"))) == RNN_159.read_bytes()


def test_big_endian_files_are_read():
    be = ">"
    data = (i32(3, be) + i32(1, be) + i32(1, be) + i32(1, be) + f64(1, be) +
            i32(4, be) + i32(2, be) + i32(3, be) + b"V 1" + i32(19, be) +
            b"torch.DoubleStorage" + i64(2, be) + f64(0.25, be) + f64(-8, be))
    obj = loads_t7(data)
    assert obj[1].tolist() == [0.25, -8.0]


def test_write_to_path_is_atomic(tmp_path):
    path = tmp_path / "cp.t7"
    write_t7(path, {"ok": torch.ones(3)})
    before = path.read_bytes()
    with pytest.raises(TypeError):
        write_t7(path, {"big": torch.zeros(1000), "bad": object()})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["cp.t7"]
    with open(tmp_path / "f.t7", "wb") as f:
        write_t7(f, [1, 2])
    assert read_t7(tmp_path / "f.t7") == {1: 1.0, 2: 2.0}
    with open(tmp_path / "f.t7", "rb") as f:
        assert read_t7(f) == {1: 1.0, 2: 2.0}


def test_trailing_bytes_are_ignored_like_torch_load():
    raw = RNN_159.read_bytes()
    assert dumps_t7(loads_t7(raw + b"trailing garbage")) == raw


# --- malformed files ---------------------------------------------------------------------------

def test_every_truncation_is_a_clean_error(tmp_path):
    raw = LSTM_159.read_bytes()
    rng = random.Random(7)
    offsets = list(range(0, 120)) + rng.sample(range(120, len(raw)), 180)
    path = tmp_path / "cut.t7"
    for n in offsets:
        path.write_bytes(raw[:n])
        with pytest.raises(T7FormatError) as info:
            read_t7(path)
        message = str(info.value)
        assert str(path) in message
        assert n == 0 or "byte" in message, message


def _error(data, **kwargs):
    with pytest.raises(T7FormatError) as info:
        loads_t7(data, **kwargs)
    return str(info.value)


def test_huge_storage_is_refused_before_allocating():
    data = storage_bytes(1, b"torch.FloatStorage", 10 ** 12, b"\0" * 64)
    tracemalloc.start()
    try:
        message = _error(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "1000000000000 elements" in message and "byte 37" in message
    assert peak < 1 << 20
    assert "-5" in _error(storage_bytes(1, b"torch.FloatStorage", -5, b""))


def test_huge_string_and_table_sizes_are_refused():
    assert "2000000000" in _error(i32(2) + i32(2_000_000_000) + b"abc")
    assert "table size" in _error(i32(3) + i32(1) + i32(1 << 30) + b"\0" * 16)


def test_bad_tags_and_references():
    assert "found 9" in _error(lua_table(1, [(lua_number(1), i32(9))]))
    message = _error(lua_table(1, [(lua_string(b"x"), i32(3) + i32(5) + i32(0))]))
    assert "index 5" in message and "byte 25" in message
    selfish = loads_t7(lua_table(1, [(lua_string(b"me"), i32(3) + i32(1))]))
    assert selfish["me"] is selfish
    assert "nil" in _error(lua_table(1, [(i32(0), lua_number(1))]))
    assert "NaN" in _error(lua_table(1, [(lua_number(float("nan")), lua_number(1))]))


def test_deep_nesting_is_refused_cleanly_and_moderate_nesting_works():
    def nested(depth):
        head = b"".join(i32(3) + i32(i + 1) + i32(1) + lua_number(1) for i in range(depth))
        return head + i32(0)
    assert "nested" in _error(nested(t7.MAX_DEPTH + 10))
    data = nested(5000)
    obj = loads_t7(data)
    for _ in range(4999):
        obj = obj[1]
    assert obj == {1: None}
    assert dumps_t7(loads_t7(data)) == data


def test_class_names_and_payloads():
    bad_utf8 = i32(4) + i32(1) + i32(3) + b"V 1" + i32(4) + b"nn.\xff" + lua_table(2, [])
    assert "non-UTF-8" in _error(bad_utf8)
    unknown = torch_header(1, b"my.Thing") + lua_table(2, [(lua_string(b"k"), lua_number(2))])
    thing = loads_t7(unknown)
    assert thing.class_name == "my.Thing" and thing.fields == {"k": 2.0}
    opaque = torch_header(1, b"tds.Hash") + i32(7) + b"\0" * 32
    assert "<tds.Hash>" in _error(opaque)
    too_big = torch_header(1, b"nn.Foo", version=b"V 0x1p99999") + lua_table(2, [])
    message = _error(too_big)          # a version beyond float range: a class name, refused
    assert "expected a class name, found 'V 0x1p99999'" in message, message


def test_reader_bugs_are_not_reported_as_malformed_files(monkeypatch):
    """Only what a hostile file can cause is turned into an error about the file: an
    exception from a bug in the reader escapes as itself; running out of memory is one
    TorchRNNError that does not blame the file."""
    def broken(self, dtype, n, what):
        raise IndexError("a bug in the reader")
    monkeypatch.setattr(t7._BinarySource, "array", broken)
    with pytest.raises(IndexError, match="a bug in the reader"):
        loads_t7(RNN_159.read_bytes())

    def exhausted(self, dtype, n, what):
        raise MemoryError
    monkeypatch.setattr(t7._BinarySource, "array", exhausted)
    with pytest.raises(TorchRNNError) as info:
        loads_t7(RNN_159.read_bytes(), name="cp.t7")
    assert not isinstance(info.value, T7FormatError)
    assert str(info.value) == "cp.t7: not enough memory to read this Torch7 file"


def test_tensors_must_fit_their_storage():
    storage = storage_bytes(2, b"torch.FloatStorage", 4, b"\0" * 16)
    assert "reaches element 5" in _error(tensor_bytes(1, b"torch.FloatTensor", [5], [1], 1,
                                                      storage))
    assert "reaches" in _error(tensor_bytes(1, b"torch.FloatTensor", [2, 2], [2, 1], 2, storage))
    assert "below 1" in _error(tensor_bytes(1, b"torch.FloatTensor", [1], [1], 0, storage))
    assert "negative stride" in _error(tensor_bytes(1, b"torch.FloatTensor", [2], [-1], 2,
                                                    storage))
    assert "no storage" in _error(tensor_bytes(1, b"torch.FloatTensor", [2], [1], 1, i32(0)))
    assert "dimension count" in _error(torch_header(1, b"torch.FloatTensor") + i32(1000))
    wrong = storage_bytes(2, b"torch.DoubleStorage", 1, b"\0" * 8)
    assert "expected a torch.FloatStorage" in _error(
        tensor_bytes(1, b"torch.FloatTensor", [1], [1], 1, wrong))
    assert "refers to itself" in _error(tensor_bytes(1, b"torch.FloatTensor", [1], [1], 1,
                                                     i32(4) + i32(1)))
    overlapping = tensor_bytes(1, b"torch.FloatTensor", [1 << 40], [0], 1, storage)
    assert "overlapping" in _error(overlapping)


def test_files_that_are_not_torch7(tmp_path):
    assert "empty" in _error(b"")
    assert "HDF5" in _error((GOLDEN / "shakespeare200k.h5").read_bytes())
    assert "JSON" in _error((GOLDEN / "checkpoints" / "lstm_small_cp_159.json").read_bytes())
    assert "zip" in _error(b"PK\x03\x04" + b"\0" * 100)
    assert "git lfs" in _error(b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\n")
    assert "not a Torch7 file" in _error(b"hello world, not torch")
    with pytest.raises(TorchRNNError) as info:
        read_t7(tmp_path / "missing.t7")
    assert not isinstance(info.value, T7FormatError) and "not found" in str(info.value)


# --- fuzzing -----------------------------------------------------------------------------------

def _structural_offsets(data):
    """Offsets outside the storages' raw elements (where mutations change the structure)."""
    spans = []
    original = t7._BinarySource.array

    def recording(self, dtype, n, what):
        start = self.pos
        out = original(self, dtype, n, what)
        spans.append((start + 8, self.pos - 8))
        return out

    t7._BinarySource.array = recording
    try:
        loads_t7(data)
    finally:
        t7._BinarySource.array = original
    inside = np.zeros(len(data), dtype=bool)
    for start, end in spans:
        inside[start:max(start, end)] = True
    return np.flatnonzero(~inside).tolist()


FUZZ_BASE = RNN_159.read_bytes()
FUZZ_OFFSETS = _structural_offsets(FUZZ_BASE)
_edit = st.tuples(st.sampled_from(FUZZ_OFFSETS),
                  st.one_of(st.binary(min_size=1, max_size=8),
                            st.sampled_from([i32(v) for v in (-1, 0, 1, 2, 3, 4, 8, 9, 1 << 30)]),
                            st.sampled_from([i64(v) for v in (-1, 0, 1 << 40, 1 << 62)])))


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(edits=st.lists(_edit, min_size=1, max_size=4),
       cut=st.one_of(st.none(), st.sampled_from(FUZZ_OFFSETS)))
def test_fuzzed_files_load_or_fail_cleanly(edits, cut):
    data = bytearray(FUZZ_BASE)
    for offset, patch in edits:
        data[offset:offset + len(patch)] = patch
    if cut is not None:
        del data[cut:]
    with contextlib.suppress(T7FormatError):
        loads_t7(bytes(data))


def _ascii_base():
    modules = read_t7(RNN_159)["model"]["net"]["modules"]
    return dumps_t7({"view": modules[4], "bias": modules[5]["bias"], "f": LuaFunction(b"x")},
                    mode="ascii")


ASCII_BASE = _ascii_base()


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(st.integers(0, len(ASCII_BASE) - 1),
                                st.one_of(st.binary(min_size=1, max_size=4),
                                          st.sampled_from([b"-1", b"9", b"0", b"1e9", b"nan",
                                                           b" ", b"\n", b"99999999999"]))),
                      min_size=1, max_size=4),
       cut=st.one_of(st.none(), st.integers(0, len(ASCII_BASE))))
def test_fuzzed_ascii_files_load_or_fail_cleanly(edits, cut):
    data = bytearray(ASCII_BASE)
    for offset, patch in edits:
        data[offset:offset + len(patch)] = patch
    if cut is not None:
        del data[cut:]
    with contextlib.suppress(T7FormatError):
        loads_t7(bytes(data))
