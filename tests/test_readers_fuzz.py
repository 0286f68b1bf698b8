"""The readers other than .t7 on hostile input: vocabulary JSON (read_vocab), checkpoint
JSON (read_checkpoint_json), HDF5 data (read_splits) and .bcl tables (read_table).

Every malformed file must be one TorchRNNError naming the file: no other exception, no
hang, no allocation beyond what the file can hold, nothing executed or loaded from
elsewhere. Hand-made cases first, then hypothesis fuzzing of damaged copies of the real
fixtures. libhdf5 is C, so the fuzzed HDF5 files are read in a child process (one batch),
where a crash or a hang is seen and reported with the file that caused it.
(benchmarks/fuzz_readers.py runs the same for longer.)
"""
import contextlib
import json
import os
import signal
import struct
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import GOLDEN
from torchrnn_py import data as data_mod
from torchrnn_py.bintoutf8 import check_table, read_table
from torchrnn_py.checkpoint import read_checkpoint_json
from torchrnn_py.data import read_splits
from torchrnn_py.errors import TorchRNNError
from torchrnn_py.vocab import read_vocab

VOCAB_JSON = GOLDEN / "shakespeare200k.json"
CKPT_JSON = GOLDEN / "checkpoints" / "lstm_small_cp_100.json"
H5 = GOLDEN / "shakespeare200k.h5"
TIMEOUT = 5.0


class Hang(BaseException):
    pass


@contextlib.contextmanager
def time_limit(seconds=TIMEOUT):
    def alarm(signum, frame):
        raise Hang(f"no answer in {seconds} s")
    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def reads_cleanly(reader, path):
    """``reader(path)`` succeeds or raises a one-line TorchRNNError naming the file; returns
    the result or the error."""
    with time_limit():
        try:
            return reader(str(path))
        except TorchRNNError as err:
            message = str(err)
            assert message.startswith(str(path)), message
            assert "\n" not in message and len(message) < 600, message
            return err


def refused(reader, path, *expected):
    result = reads_cleanly(reader, path)
    assert isinstance(result, TorchRNNError), f"accepted: {result!r}"
    for text in expected:
        assert text in str(result), str(result)
    return str(result)


# -- HDF5: hand-made files -----------------------------------------------------------------

def _splits(n=1000, dtype=np.uint8):
    return {name: (np.arange(n) % 60 + 1).astype(dtype) for name in ("train", "val", "test")}


def _write_h5(path, datasets=None, **per_dataset):
    """An HDF5 file with /train, /val, /test (overridable: a callable(f) per name)."""
    with h5py.File(path, "w") as f:
        for name, data in (datasets or _splits()).items():
            if name in per_dataset:
                per_dataset[name](f)
            elif data is not None:
                f.create_dataset(name, data=data)
    return path


def test_huge_declared_dataset_is_refused_before_allocating(tmp_path):
    """A chunked dataset of 10**12 elements with nothing written: the file is a few KB."""
    path = _write_h5(tmp_path / "huge.h5", train=lambda f: f.create_dataset(
        "train", shape=(10 ** 12,), dtype="u1", chunks=(4096,)))
    assert os.path.getsize(path) < 10_000
    started = time.perf_counter()
    refused(read_splits, path, "/train declares 1000000000000 token ids",
            "more than the whole file holds")
    assert time.perf_counter() - started < 1.0


def test_huge_compressed_dataset_is_refused_before_allocating(tmp_path):
    path = _write_h5(tmp_path / "huge_gzip.h5", train=lambda f: f.create_dataset(
        "train", shape=(10 ** 12,), dtype="u4", chunks=(1 << 16,), compression="gzip"))
    refused(read_splits, path, "/train declares", "compressed bytes",
            f"{data_mod.MAX_EXPANSION} times")


def test_compressed_and_chunked_datasets_within_bounds_are_read(tmp_path):
    """Legitimate files in other layouts still load: gzip of very repetitive data (about
    700x) is inside the bound; chunked, shuffled, checksummed, user block, uint32."""
    repetitive = {name: np.full(200_000, 7, np.uint8) for name in ("train", "val", "test")}
    with h5py.File(tmp_path / "gzip.h5", "w", userblock_size=512) as f:
        for name, data in repetitive.items():
            f.create_dataset(name, data=data, chunks=(1 << 16,), compression="gzip",
                             compression_opts=9, shuffle=True, fletcher32=True)
    splits = reads_cleanly(read_splits, tmp_path / "gzip.h5")
    assert all(np.array_equal(splits[k], repetitive[k]) for k in repetitive)
    path = _write_h5(tmp_path / "u32.h5", _splits(dtype=np.uint32))
    assert reads_cleanly(read_splits, path)["train"].dtype == np.uint32
    assert reads_cleanly(read_splits, H5)["train"].shape == (160000,)


@pytest.mark.parametrize("case,expected", [
    ("float", "integer token ids, found dtype float32"),
    ("2d", "1-D dataset of token ids, found a 2-D dataset"),
    ("scalar", "1-D dataset of token ids, found a 0-D dataset"),
    ("group", "1-D dataset of token ids, found a group"),
    ("strings", "integer token ids"),
    ("missing", "missing /val"),
    ("external_link", "link to another file"),
    ("external_storage", "keeps its data in other files"),
    ("virtual", "keeps its data in other files"),
    ("unknown_filter", "needs HDF5 filter 32123"),
])
def test_malformed_hdf5_layouts(tmp_path, case, expected):
    other = _write_h5(tmp_path / "other.h5")
    makers = {
        "float": lambda f: f.create_dataset("train", data=np.ones(10, np.float32)),
        "2d": lambda f: f.create_dataset("train", data=np.ones((10, 2), np.uint8)),
        "scalar": lambda f: f.create_dataset("train", data=np.uint8(3)),
        "group": lambda f: f.create_group("train"),
        "strings": lambda f: f.create_dataset("train", data=np.array([b"ab", b"cd"])),
        "missing": None,
        "external_link": lambda f: f.__setitem__("train", h5py.ExternalLink(str(other),
                                                                            "/train")),
        "external_storage": lambda f: f.create_dataset(
            "train", shape=(100,), dtype="u1", external=[(str(tmp_path / "raw"), 0, 100)]),
        "virtual": lambda f: f.create_virtual_dataset("train", _virtual_layout(other)),
        "unknown_filter": _dataset_with_unknown_filter,
    }
    datasets = _splits()
    if case == "missing":
        datasets["val"] = None
        path = _write_h5(tmp_path / f"{case}.h5", datasets)
    else:
        path = _write_h5(tmp_path / f"{case}.h5", train=makers[case])
    refused(read_splits, path, expected)


def _virtual_layout(other):
    layout = h5py.VirtualLayout(shape=(1000,), dtype="u1")
    layout[:] = h5py.VirtualSource(str(other), "train", shape=(1000,))
    return layout


def _dataset_with_unknown_filter(f):
    """A dataset whose pipeline names filter 32123: libhdf5 would look for a plugin (a
    shared library) to decode it; the reader refuses before reading."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_chunk((100,))
    dcpl.set_filter(32123, h5py.h5z.FLAG_OPTIONAL, (1, 2))
    space = h5py.h5s.create_simple((1000,))
    h5py.h5d.create(f.id, b"train", h5py.h5t.STD_U8LE, space, dcpl=dcpl)
    f["train"][...] = np.ones(1000, np.uint8)


@pytest.mark.parametrize("content,expected", [
    (b"", "it is empty"),
    (b"not an hdf5 file at all\n" * 100, "has no HDF5 signature"),
    (b"\x89PNG\r\n\x1a\n" + bytes(1000), "has no HDF5 signature"),
])
def test_files_that_are_not_hdf5(tmp_path, content, expected):
    path = tmp_path / "x.h5"
    path.write_bytes(content)
    refused(read_splits, path, "not an HDF5 file", expected)


def test_truncated_hdf5_files(tmp_path):
    data = H5.read_bytes()
    for cut in (8, 96, 500, 1024, 2047, 2048, 100_000, len(data) - 1):
        path = tmp_path / f"cut_{cut}.h5"
        path.write_bytes(data[:cut])
        result = reads_cleanly(read_splits, path)
        assert isinstance(result, TorchRNNError), cut


def test_declared_length_beyond_the_data_is_refused(tmp_path):
    """Every copy of /train's length (dims and max dims) set to 2**40: libhdf5 or the size
    check refuses it, without allocating a terabyte."""
    data = bytearray(H5.read_bytes())
    old, new = struct.pack("<Q", 160000), struct.pack("<Q", 1 << 40)
    spots = [i for i in range(2048) if data[i:i + 8] == old]
    assert spots
    for i in spots:
        data[i:i + 8] = new
    (tmp_path / "long.h5").write_bytes(bytes(data))
    refused(read_splits, tmp_path / "long.h5")


# -- JSON: hand-made files -----------------------------------------------------------------

GOLDEN_VOCAB = json.loads(VOCAB_JSON.read_text())

JSON_CASES = {
    "not_utf8": (b'{"idx_to_token": {"1": "\xe9"}}', "not UTF-8"),
    "truncated": (VOCAB_JSON.read_bytes()[:700], "not valid JSON"),
    "empty_file": (b"", "not valid JSON"),
    "deep_lists": (b"[" * 100_000, "nested too deeply"),
    "deep_objects": (b'{"a":' * 50_000, "nested too deeply"),
    "huge_integer": (b'{"token_to_idx": {"a": ' + b"9" * 5000 + b"}}", "too many digits"),
    "infinite_id": (b'{"token_to_idx": {"a": 1e999}}', "positive integer"),
    "nan_id": (b'{"token_to_idx": {"a": NaN}}', "positive integer"),
    "huge_id": (b'{"token_to_idx": {"a": 1e300}}', "far larger"),
    "huge_key": (b'{"idx_to_token": {"' + b"1" * 5000 + b'": "a"}}', "far larger"),
    "duplicate_key": (b'{"idx_to_token": {"1": "a", "1": "b"}}', "key '1' appears twice"),
    "duplicate_id": (b'{"idx_to_token": {"1": "a", "01": "b"}}', "appears twice"),
    "id_zero": (b'{"idx_to_token": {"0": "a", "1": "b"}}', "ids start at 1"),
    "ids_not_1_to_V": (b'{"idx_to_token": {"2": "a", "3": "b"}}', "not contiguous"),
    "negative_id": (b'{"token_to_idx": {"a": -1}}', "positive integer"),
    "token_not_string": (b'{"idx_to_token": {"1": ["a"]}}', "non-empty string"),
    "token_number": (b'{"idx_to_token": [7]}', "non-empty string"),
    "token_empty": (b'{"idx_to_token": [""]}', "non-empty string"),
    "lone_surrogate": (b'{"idx_to_token": {"1": "\\ud800"}}', "lone surrogate"),
    "wrong_type": (b'{"idx_to_token": 5}', "must be an object or a list"),
    "bool_id": (b'{"token_to_idx": {"a": true}}', "positive integer"),
    "same_id_twice": (b'{"token_to_idx": {"a": 1, "b": 1}}', "given to both"),
    "top_level_list": (b"[1, 2]", "expected a JSON object"),
}


@pytest.mark.parametrize("case", sorted(JSON_CASES))
def test_malformed_vocabularies(tmp_path, case):
    content, expected = JSON_CASES[case]
    path = tmp_path / "vocab.json"
    path.write_bytes(content)
    refused(read_vocab, path, expected)


CKPT_CASES = {
    "not_utf8": (b'{"i": 1, "opt": {"x": "\xff"}}', "not UTF-8"),
    "truncated": (CKPT_JSON.read_bytes()[:500], "not a valid checkpoint JSON (Expecting"),
    "deep": (b"[" * 100_000, "nested too deeply"),
    "huge_integer": (b'{"i": ' + b"1" * 5000 + b"}", "too many digits"),
    "i_infinite": (b'{"i": 1e999}', "'i' should be a non-negative integer"),
    "i_fraction": (b'{"i": 2.5}', "'i' should be a non-negative integer"),
    "i_string": (b'{"i": "100"}', "'i' should be a non-negative integer"),
    "i_negative": (b'{"i": -1}', "'i' should be a non-negative integer"),
    "opt_list": (b'{"opt": [1, 2]}', "'opt' should be an object"),
    "history_string": (b'{"train_loss_history": "abc"}', "not lists of numbers"),
    "history_item": (b'{"val_loss_history": [1.0, "x"]}', "'val_loss_history'[1]"),
    "history_bool": (b'{"train_loss_history": [true]}', "not lists of numbers"),
    "history_it_fraction": (b'{"val_loss_history_it": [1.5]}', "should be an iteration"),
    "duplicate_key": (b'{"i": 1, "i": 2}', "key 'i' appears twice"),
    "top_level_list": (b"[]", "expected a JSON object"),
}


@pytest.mark.parametrize("case", sorted(CKPT_CASES))
def test_malformed_checkpoint_json(tmp_path, case):
    content, expected = CKPT_CASES[case]
    path = tmp_path / "cp.json"
    path.write_bytes(content)
    refused(read_checkpoint_json, path, expected)


def test_checkpoint_json_accepts_what_train_lua_writes(tmp_path):
    data = reads_cleanly(read_checkpoint_json, CKPT_JSON)
    assert data["i"] == 100 and len(data["train_loss_history"]) == 100
    path = tmp_path / "cp.json"
    path.write_bytes(b'{"i": 100.0, "val_loss_history": {}, "val_loss_history_it": [50.0],'
                     b' "train_loss_history": [NaN, 1e999, 2]}')
    data = reads_cleanly(read_checkpoint_json, path)
    assert data["i"] == 100 and isinstance(data["i"], int)
    assert data["val_loss_history"] == [] and data["val_loss_history_it"] == [50]


# -- .bcl tables ----------------------------------------------------------------------------

@pytest.mark.parametrize("content,expected", [
    (b"", "has 256 bytes, found 0"),
    (bytes(range(255)), "has 256 bytes, found 255"),
    (bytes(range(256)) + b"\x00", "has 256 bytes, found 257"),
    (bytes(1 << 20), "found 1048576"),
    (bytes(256), "appears 256 times"),
    (bytes(range(255)) + b"\x00", "byte value 0 (0x00) appears 2 times"),
])
def test_malformed_bcl_tables(tmp_path, content, expected):
    path = tmp_path / "t.bcl"
    path.write_bytes(content)
    refused(read_table, path, expected)


def test_bcl_table_that_is_a_directory_or_missing(tmp_path):
    refused(read_table, tmp_path, "directory")
    refused(read_table, tmp_path / "nope.bcl", "not found")
    with pytest.raises(TorchRNNError):
        check_table(np.arange(256, dtype=np.int64) - 1)


# -- fuzzing ---------------------------------------------------------------------------------

INTERESTING_JSON = [b"0", b"-1", b"1.5", b"1e999", b"NaN", b"true", b"null", b'""', b"[]",
                    b"{}", b'"\\ud800"', b"9" * 30, b"[" * 3000, b'{"1":"a"}', b'"1"',
                    b",", b":", b'"', b"}", b"]"]

_edits = st.lists(st.tuples(st.floats(0, 1, exclude_max=True),
                            st.one_of(st.binary(min_size=1, max_size=6),
                                      st.sampled_from(INTERESTING_JSON)),
                            st.integers(0, 4)),
                  min_size=1, max_size=4)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2 ** 70) | st.floats(allow_nan=True) |
    st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                               max_size=3),
    max_leaves=6)


def apply_edits(base, edits, cut):
    """Replace ``drop`` bytes at relative offset ``where`` by ``patch``, for each edit."""
    data = bytearray(base)
    for where, patch, drop in edits:
        pos = int(where * len(data)) if data else 0
        data[pos:pos + drop] = patch
    if cut is not None:
        del data[int(cut * len(data)):]
    return bytes(data)


def replace_value(value, path, new):
    """Put ``new`` somewhere in the parsed JSON ``value``, steered by the ints of ``path``;
    returns the new top-level value."""
    if not path or not isinstance(value, (dict, list)) or not value:
        return new
    if isinstance(value, dict):
        key = sorted(value)[path[0] % len(value)]
        return dict(value, **{key: replace_value(value[key], path[1:], new)})
    k = path[0] % len(value)
    return value[:k] + [replace_value(value[k], path[1:], new)] + value[k + 1:]


_json_mutations = st.one_of(
    st.tuples(st.just("bytes"), _edits, st.none() | st.floats(0, 1)),
    st.tuples(st.just("value"), st.lists(st.integers(0, 10 ** 6), max_size=4), _json_values,
              st.booleans()),
)


def mutated_json(base, mutation):
    if mutation[0] == "bytes":
        return apply_edits(base, mutation[1], mutation[2])
    _, path, new, duplicate = mutation
    value = replace_value(json.loads(base), path, new)
    text = json.dumps(value)
    if duplicate and isinstance(value, dict) and value:
        key = sorted(value)[0]                  # a key given twice: json.dumps cannot
        text = text[:-1] + ", " + json.dumps(key) + ": " + json.dumps(value[key]) + "}"
    return text.encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


FUZZ_SETTINGS = dict(deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(max_examples=400, **FUZZ_SETTINGS)
@given(mutation=_json_mutations)
def test_fuzzed_vocabularies_read_or_fail_cleanly(scratch, mutation):
    path = scratch / "vocab.json"
    path.write_bytes(mutated_json(VOCAB_JSON.read_bytes(), mutation))
    reads_cleanly(read_vocab, path)


@settings(max_examples=300, **FUZZ_SETTINGS)
@given(mutation=_json_mutations)
def test_fuzzed_checkpoint_json_reads_or_fails_cleanly(scratch, mutation):
    path = scratch / "cp.json"
    path.write_bytes(mutated_json(CKPT_JSON.read_bytes(), mutation))
    reads_cleanly(read_checkpoint_json, path)


@settings(max_examples=300, **FUZZ_SETTINGS)
@given(edits=st.lists(st.tuples(st.integers(0, 255), st.binary(min_size=0, max_size=4)),
                      max_size=3),
       cut=st.none() | st.integers(0, 300), extra=st.binary(max_size=3))
def test_fuzzed_bcl_tables_read_or_fail_cleanly(scratch, edits, cut, extra):
    data = bytearray(range(256))
    for pos, patch in edits:
        data[pos:pos + len(patch)] = patch
    if cut is not None:
        del data[cut:]
    path = scratch / "t.bcl"
    path.write_bytes(bytes(data) + extra)
    result = reads_cleanly(read_table, path)
    if not isinstance(result, TorchRNNError):
        assert sorted(result) == list(range(256))


# HDF5 in a child process: one JSON line per file, a start line before each read, so that a
# crash or a hang inside libhdf5 names the file it happened on.
_H5_WORKER = r"""
import json, resource, signal, sys
from torchrnn_py.data import read_splits, H5PY_ERRORS
from torchrnn_py.errors import TorchRNNError
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
for path in sys.argv[1:]:
    print(json.dumps({"start": path}), flush=True)
    signal.alarm(10)                      # default action: a hang in C kills the worker
    try:
        read_splits(path)
        outcome, detail = "ok", ""
    except TorchRNNError as err:
        message, cause = str(err), err.__context__
        outcome = "clean"
        if "\n" in message or not message.startswith(path) or "not enough memory" in message:
            outcome = "unclear"
        elif cause is not None and not isinstance(cause, H5PY_ERRORS + (TorchRNNError,)):
            outcome = "safety net"
        detail = message
    except BaseException as err:
        outcome, detail = "escape", f"{type(err).__name__}: {err}"
    signal.alarm(0)
    print(json.dumps({"path": path, "outcome": outcome, "detail": detail[:300]}), flush=True)
"""


def _h5_metadata_offsets(path):
    """Offsets of /train, /val, /test metadata (everything but the raw token bytes)."""
    with h5py.File(path, "r") as f:
        raw = [(f[n].id.get_offset(), f[n].id.get_storage_size()) for n in f]
    size = os.path.getsize(path)
    inside = np.zeros(size, bool)
    for offset, n in raw:
        if offset is not None:
            inside[offset + 8:offset + n - 8] = True
    return np.flatnonzero(~inside).tolist()


H5_BASE = H5.read_bytes()
H5_OFFSETS = _h5_metadata_offsets(H5)
H5_LENGTHS = [struct.pack("<Q", n) for n in (160000, 20000)]
_h5_edit = st.tuples(
    st.sampled_from(H5_OFFSETS),
    st.one_of(st.binary(min_size=1, max_size=8),
              st.sampled_from([struct.pack("<Q", v) for v in (0, 1, 1 << 40, 10 ** 12,
                                                              (1 << 64) - 1)]),
              st.sampled_from([struct.pack("<I", v) for v in (0, 1, 0xFFFFFFFF, 1 << 31)])))


@pytest.fixture(scope="module")
def small_h5_bases(tmp_path_factory):
    """Small chunked/compressed files, to reach more of libhdf5 (B-trees, filters)."""
    tmp = tmp_path_factory.mktemp("h5_bases")
    bases = []
    for name, options in {"gzip": dict(chunks=(128,), compression="gzip", shuffle=True),
                          "fletcher": dict(chunks=(200,), fletcher32=True, maxshape=(None,)),
                          "lzf": dict(chunks=(64,), compression="lzf")}.items():
        path = _write_h5(tmp / f"{name}.h5", {k: None for k in ("train", "val", "test")},
                         **{k: (lambda f, k=k, o=options: f.create_dataset(
                             k, data=_splits(500)[k], **o)) for k in ("train", "val", "test")})
        bases.append(path.read_bytes())
    return bases


def test_fuzzed_hdf5_files_read_or_fail_cleanly(tmp_path, small_h5_bases):
    """Damaged copies of the golden HDF5 file (edits in its metadata, lengths, truncation)
    and of small chunked/compressed files, read in one child process."""
    files, described = [], {}

    @settings(max_examples=200, **FUZZ_SETTINGS)
    @given(base=st.integers(0, len(small_h5_bases)), edits=st.lists(_h5_edit, max_size=4),
           lengths=st.booleans(), cut=st.none() | st.floats(0, 1))
    def collect(base, edits, lengths, cut):
        data = bytearray(H5_BASE if base == 0 else small_h5_bases[base - 1])
        limit = len(data) if base else 2048
        for offset, patch in edits:
            offset = offset % limit
            data[offset:offset + len(patch)] = patch
        if lengths and base == 0:              # dims and max dims of /train, all at once
            for i in range(2048):
                if data[i:i + 8] == H5_LENGTHS[0]:
                    data[i:i + 8] = struct.pack("<Q", 1 << 36)
        if cut is not None:
            del data[int(cut * len(data)):]
        path = tmp_path / f"{len(files)}.h5"
        path.write_bytes(bytes(data))
        files.append(str(path))
        described[str(path)] = f"base {base}, edits {edits}, lengths {lengths}, cut {cut}"

    collect()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", _H5_WORKER] + files, capture_output=True,
                          text=True, timeout=120, env=env)
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    results = {r["path"]: r for r in records if "path" in r}
    started = [r["start"] for r in records if "start" in r]
    if proc.returncode != 0:
        culprit = started[-1] if started else None
        pytest.fail(f"the HDF5 reader crashed or hung (status {proc.returncode}) on "
                    f"{culprit} ({described.get(culprit)}): {proc.stderr[-1000:]}")
    assert len(results) == len(files)
    bad = [(described[p], r["outcome"], r["detail"]) for p, r in results.items()
           if r["outcome"] not in ("ok", "clean")]
    assert not bad, bad[:5]
    outcomes = [r["outcome"] for r in results.values()]
    assert outcomes.count("clean") > 50 and outcomes.count("ok") > 5   # the fuzzing bites
