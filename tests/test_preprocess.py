"""preprocess: identical outputs to torch-rnn's preprocess.py, streamed; clear errors."""
import codecs
import json
import math
import os
import pathlib
import subprocess
import sys

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import GOLDEN, PREPROCESS
from torchrnn_py import preprocess as preprocess_module
from torchrnn_py.cli import preprocess as preprocess_cli
from torchrnn_py.errors import TorchRNNError
from torchrnn_py.cli.preprocess import main
from torchrnn_py.preprocess import preprocess

REPO = pathlib.Path(__file__).resolve().parent.parent
SPLITS = ("train", "val", "test")


# ------------------------------------------------------------------ reference

def reference_preprocess(path, val_frac=0.1, test_frac=0.1, encoding="utf-8"):
    """A slow, per-character model of the original algorithm.

    Text is read through ``codecs.open`` line by line, the reader the original used, so its
    end-of-file behaviour is the original's; bytes mode follows Python 2 (one token per
    byte, bytes above 127 named ``[N]``). Ids by first appearance; int() split sizes; the
    stream cut train, val, test.
    """
    if encoding == "bytes":
        with open(path, "rb") as f:
            tokens = [chr(b) if b < 128 else "[%d]" % b for b in f.read()]
    else:
        tokens = []
        with codecs.open(path, "r", encoding) as f:
            for line in f:
                for char in line:
                    tokens.append(char)
    token_to_idx = {}
    for token in tokens:
        if token not in token_to_idx:
            token_to_idx[token] = len(token_to_idx) + 1
    total = len(tokens)
    val = int(val_frac * total)
    test = int(test_frac * total)
    train = total - val - test
    dtype = np.uint8 if len(token_to_idx) <= 255 else np.uint32
    ids = np.array([token_to_idx[t] for t in tokens], dtype=dtype)
    return {
        "train": ids[:train], "val": ids[train:train + val], "test": ids[train + val:],
        "dtype": dtype,
        "json": {"token_to_idx": token_to_idx,
                 "idx_to_token": {str(i): t for t, i in token_to_idx.items()}},
    }


def read_outputs(h5_path, json_path):
    with h5py.File(h5_path, "r") as f:
        arrays = {name: f[name][()] for name in SPLITS}
        assert sorted(f.keys()) == sorted(SPLITS)
    with open(json_path) as f:
        return arrays, json.load(f)


def assert_outputs_equal(h5_path, json_path, expected):
    arrays, vocab_json = read_outputs(h5_path, json_path)
    for name in SPLITS:
        assert arrays[name].dtype == expected["dtype"], name
        assert arrays[name].ndim == 1
        np.testing.assert_array_equal(arrays[name], expected[name], err_msg=name)
    assert vocab_json == expected["json"]


def run_case(tmp_path, content, encoding="utf-8", val_frac=0.1, test_frac=0.1):
    src = tmp_path / "input.txt"
    src.write_bytes(content)
    h5, js = tmp_path / "out.h5", tmp_path / "out.json"
    result = preprocess(str(src), str(h5), str(js), val_frac=val_frac, test_frac=test_frac,
                        encoding=encoding)
    expected = reference_preprocess(str(src), val_frac, test_frac, encoding)
    assert_outputs_equal(h5, js, expected)
    assert result["total"] == sum(len(expected[n]) for n in SPLITS)
    assert result["dtype"] == expected["dtype"]
    return result, expected


@pytest.fixture(params=[None, 3], ids=["default-chunks", "3-byte-chunks"])
def chunking(request, monkeypatch):
    """Run each case with the real chunk size and with tiny chunks (boundaries everywhere)."""
    if request.param:
        monkeypatch.setattr(preprocess_module, "CHUNK_BYTES", request.param)
    return request.param


# -------------------------------------------------------- the real fixtures

@pytest.mark.parametrize("stem", [PREPROCESS / "li_qing_zhao", GOLDEN / "shakespeare200k"],
                         ids=["li_qing_zhao", "shakespeare200k"])
def test_real_fixtures_identical(tmp_path, stem):
    h5, js = tmp_path / "o.h5", tmp_path / "o.json"
    preprocess(str(stem) + ".txt", str(h5), str(js))
    with h5py.File(str(stem) + ".h5", "r") as want, h5py.File(h5, "r") as got:
        assert sorted(got.keys()) == sorted(want.keys())
        for name in SPLITS:
            assert got[name].dtype == want[name].dtype
            assert got[name].shape == want[name].shape
            np.testing.assert_array_equal(got[name][()], want[name][()])
    with open(str(stem) + ".json") as f_want, open(js) as f_got:
        assert json.load(f_got) == json.load(f_want)


def test_json_bytes_match_the_python3_original(tmp_path):
    """Key order and formatting too: json.dump defaults, token_to_idx first, id order."""
    js = tmp_path / "o.json"
    preprocess(str(GOLDEN / "shakespeare200k.txt"), str(tmp_path / "o.h5"), str(js))
    assert js.read_bytes() == (GOLDEN / "shakespeare200k.json").read_bytes()


def test_datasets_laid_out_like_h5py_default(tmp_path):
    preprocess(str(GOLDEN / "shakespeare200k.txt"), str(tmp_path / "o.h5"),
               str(tmp_path / "o.json"), val_frac=0.0)
    with h5py.File(tmp_path / "ref.h5", "w") as ref:
        ref.create_dataset("full", data=np.zeros(5, np.uint8))
        ref.create_dataset("empty", data=np.zeros(0, np.uint8))
        want = {n: ref[n].id.get_create_plist() for n in ("full", "empty")}
        with h5py.File(tmp_path / "o.h5", "r") as f:
            for name in SPLITS:
                plist = f[name].id.get_create_plist()
                model = want["empty" if f[name].size == 0 else "full"]
                assert f[name].chunks is None and f[name].compression is None
                assert f[name].maxshape == f[name].shape
                assert plist.get_layout() == model.get_layout() == h5py.h5d.CONTIGUOUS
                assert plist.get_nfilters() == 0
                assert plist.get_alloc_time() == model.get_alloc_time()
                assert plist.get_fill_time() == model.get_fill_time()


# -------------------------------------------------- generated edge cases

CASES = {
    "crlf": ("first line\r\nsecond\r\n\r\nlone cr\rend\n".encode("utf-8"), "utf-8"),
    "astral": ("a\U0001F600b\U0001D11Ec\U0001F600\U00010348\n".encode("utf-8"), "utf-8"),
    "combining": ("e\u0301 n\u0303 A\u030a\u0301 \u0915\u094d\u0937".encode("utf-8"), "utf-8"),
    "utf8_bom_is_a_token": ("\ufeffhi\ufeff".encode("utf-8"), "utf-8"),
    "utf8_sig": ("\ufeffhi there".encode("utf-8"), "utf-8-sig"),
    "latin1": (bytes(range(1, 256)) + b"\r\nabc\xe9\xff", "latin-1"),
    "cp1252": ("caf\u00e9 \u20ac \u201cquoted\u201d".encode("cp1252"), "cp1252"),
    "utf16": ("h\u00e9llo w\u00f6rld \U0001F600\r\n\u4e2d".encode("utf-16"), "utf-16"),
    "utf16_le": ("plain \u4e2d\u6587 \U0001F600".encode("utf-16-le"), "utf-16-le"),
    "utf32": ("x\U0001F600y".encode("utf-32"), "utf-32"),
    "gbk": ("\u5e38\u8bb0\u6eaa\u4ead\u65e5\u66ae\uff0c\u6c89\u9189abc\n".encode("gbk"), "gbk"),
    "shift_jis": ("\u3053\u3093\u306b\u3061\u306f, world".encode("shift_jis"), "shift_jis"),
    "over_255_tokens": ("".join(chr(0x4E00 + i) for i in range(300)) * 2).encode("utf-8"),
    "exactly_255_tokens": ("".join(chr(0x100 + i) for i in range(255)) * 2).encode("utf-8"),
    "exactly_256_tokens": ("".join(chr(0x100 + i) for i in range(256)) * 2).encode("utf-8"),
    "one_char": (b"a", "utf-8"),
    "two_chars": (b"ab", "utf-8"),
    "three_chars": ("\u00e9\U0001F600\n".encode("utf-8"), "utf-8"),
    "truncated_utf8_tail_dropped": (b"abc\xe4\xb8", "utf-8"),
    "odd_utf16_tail_dropped": ("ab".encode("utf-16-le") + b"c", "utf-16-le"),
    "unterminated_utf7_dropped": (b"hi +AGE", "utf-7"),
    "bytes_all_values": (bytes(range(256)) + bytes(range(255, -1, -1)), "bytes"),
    "bytes_small": (b"ab\r\n\x00\xc3\xa9\xff\xc3", "bytes"),
    "bytes_utf8_text": ("\u4e2d\u6587 text\r\n".encode("utf-8") * 3, "bytes"),
}
CASES = {k: (v if isinstance(v, tuple) else (v, "utf-8")) for k, v in CASES.items()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_reference(tmp_path, chunking, name):
    content, encoding = CASES[name]
    result, expected = run_case(tmp_path, content, encoding)
    if name == "over_255_tokens" or name == "exactly_256_tokens":
        assert result["dtype"] == np.uint32
    if name == "exactly_255_tokens":
        assert result["dtype"] == np.uint8


def test_bytes_mode_names_high_bytes(tmp_path):
    result, _ = run_case(tmp_path, bytes(range(256)), "bytes")
    vocab_json = json.loads((tmp_path / "out.json").read_text())
    assert result["vocab_size"] == 256 and result["dtype"] == np.uint32
    assert vocab_json["idx_to_token"]["1"] == "\x00"
    assert vocab_json["idx_to_token"]["128"] == "\x7f"
    assert vocab_json["idx_to_token"]["129"] == "[128]"
    assert vocab_json["idx_to_token"]["256"] == "[255]"
    assert vocab_json["token_to_idx"]["[200]"] == 201
    assert result["vocab"].is_bytes
    assert result["vocab"].decode_bytes(np.arange(1, 257)) == bytes(range(256))


def test_crlf_is_two_tokens(tmp_path):
    result, _ = run_case(tmp_path, b"a\r\nb", "utf-8")
    assert result["total"] == 4
    assert result["idx_to_token"] == {1: "a", 2: "\r", 3: "\n", 4: "b"}


def test_astral_and_combining_token_counts(tmp_path):
    result, _ = run_case(tmp_path, "\U0001F600e\u0301".encode("utf-8"))
    assert result["total"] == 3
    assert result["idx_to_token"] == {1: "\U0001F600", 2: "e", 3: "\u0301"}


@pytest.mark.parametrize("total,val_frac,test_frac", [
    (1, 0.1, 0.1), (2, 0.1, 0.1), (3, 0.1, 0.1), (3, 0.34, 0.34), (10, 0.29, 0.3),
    (10, 0.3, 0.1), (7, 0.5, 0.49), (100, 0.0, 0.0)])
def test_split_sizes_truncate(tmp_path, total, val_frac, test_frac):
    content = ("abcdefghij" * 10)[:total].encode("ascii")
    result, _ = run_case(tmp_path, content, val_frac=val_frac, test_frac=test_frac)
    assert result["val_size"] == int(val_frac * total)
    assert result["test_size"] == int(test_frac * total)
    assert result["train_size"] == total - result["val_size"] - result["test_size"]


def test_empty_val_with_nonempty_test(tmp_path):
    """The original crashes (IndexError) here; we cut the stream as specified."""
    result, _ = run_case(tmp_path, b"abcdefghij", val_frac=0.0, test_frac=0.2)
    assert (result["train_size"], result["val_size"], result["test_size"]) == (8, 0, 2)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.sampled_from(
    list("ab \r\n\t\u00e9\u0301\u4e2d") + ["\U0001F600", "\x00", "\u2028"]), max_size=60),
    encoding=st.sampled_from(["utf-8", "utf-16", "utf-8-sig"]),
    chunk=st.integers(1, 9), val_frac=st.sampled_from([0.0, 0.1, 0.25, 0.33]))
def test_random_texts_match_reference(tmp_path_factory, text, encoding, chunk, val_frac):
    text = text or "x"
    tmp = tmp_path_factory.mktemp("h")
    saved = preprocess_module.CHUNK_BYTES
    preprocess_module.CHUNK_BYTES = chunk
    try:
        run_case(tmp, text.encode(encoding), encoding, val_frac=val_frac, test_frac=0.2)
    finally:
        preprocess_module.CHUNK_BYTES = saved


def test_progress_reports_both_passes(tmp_path, monkeypatch):
    monkeypatch.setattr(preprocess_module, "CHUNK_BYTES", 1000)
    src = tmp_path / "in.txt"
    src.write_bytes(b"hello world\n" * 500)
    calls = []
    preprocess(str(src), str(tmp_path / "o.h5"), str(tmp_path / "o.json"),
               progress=lambda done, total: calls.append((done, total)))
    size = src.stat().st_size
    assert all(total == 2 * size for _, total in calls)
    dones = [d for d, _ in calls]
    assert dones == sorted(dones) and dones[-1] == 2 * size and len(calls) == 12


def test_returns_what_it_wrote(tmp_path):
    result, expected = run_case(tmp_path, b"hello")
    assert result["vocab_size"] == 4
    assert result["idx_to_token"] == {1: "h", 2: "e", 3: "l", 4: "o"}
    assert result["token_to_idx"] == {"h": 1, "e": 2, "l": 3, "o": 4}
    assert result["vocab"].decode([1, 2, 3, 3, 4]) == "hello"


# ------------------------------------------------------- the command line

def test_summary_lines_match_golden(tmp_path, capsys):
    status = main(["--input_txt", str(GOLDEN / "shakespeare200k.txt"),
                   "--output_h5", str(tmp_path / "o.h5"),
                   "--output_json", str(tmp_path / "o.json")])
    out = capsys.readouterr()
    assert status == 0
    assert out.out == (GOLDEN / "preprocess_stdout.txt").read_text()
    # what was written, on stderr, so that stdout stays the original's
    assert out.err == f"wrote {tmp_path / 'o.h5'}\nwrote {tmp_path / 'o.json'}\n"


def test_summary_for_uint32(tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_bytes(CASES["over_255_tokens"][0])
    assert main(["--input_txt", str(src), "--output_h5", str(tmp_path / "o.h5"),
                 "--output_json", str(tmp_path / "o.json"), "--val_frac", "0.25",
                 "--test_frac", "0"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "Total vocabulary size: 300", "Total tokens in file: 600", "  Training size: 450",
        "  Val size: 150", "  Test size: 0", "Using dtype  <class 'numpy.uint32'>"]


def test_quiet_prints_nothing(tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_bytes(b"abc")
    assert main(["--input_txt", str(src), "--output_h5", str(tmp_path / "o.h5"),
                 "--output_json", str(tmp_path / "o.json"), "--quiet",
                 "--encoding", "bytes"]) == 0
    assert capsys.readouterr() == ("", "")
    assert (tmp_path / "o.h5").exists() and (tmp_path / "o.json").exists()


def test_defaults_are_the_originals():
    args = preprocess_cli.build_parser().parse_args([])
    assert vars(args) == {"input_txt": "data/tiny-shakespeare.txt",
                          "output_h5": "data/tiny-shakespeare.h5",
                          "output_json": "data/tiny-shakespeare.json",
                          "val_frac": 0.1, "test_frac": 0.1, "quiet": False,
                          "encoding": "utf-8"}


def test_runs_as_module(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "torchrnn_py.preprocess",
         "--input_txt", str(GOLDEN / "shakespeare200k.txt"),
         "--output_h5", str(tmp_path / "o.h5"), "--output_json", str(tmp_path / "o.json")],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == (GOLDEN / "preprocess_stdout.txt").read_text()
    expected = reference_preprocess(str(GOLDEN / "shakespeare200k.txt"))
    assert_outputs_equal(tmp_path / "o.h5", tmp_path / "o.json", expected)


def test_import_does_not_run_or_load_torch():
    code = ("import sys, torchrnn_py.preprocess; "
            "print('torch' in sys.modules, 'h5py' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.split() == ["False", "False"]


# ---------------------------------------------------------------- bad input

BAD = {
    # name: (file content or None for no file, extra args, text expected in the message)
    "missing_input": (None, [], "not found"),
    "bad_utf8": (b"hello\xff\xfeworld", [], "byte offset 5"),
    "bad_utf8_later": (b"ok" * 10 + b"\xe4\xb8A", [], "byte offset 20"),
    "truncated_gbk": ("\u4e2d".encode("gbk") + b"\xc4", ["--encoding", "gbk"], "offset 2"),
    "unknown_encoding": (b"abc", ["--encoding", "no-such-codec"], "unknown encoding"),
    "not_text_encoding": (b"abc", ["--encoding", "base64"], "not a text encoding"),
    "fractions_sum_to_one": (b"abc", ["--val_frac", "0.5", "--test_frac", "0.5"], "below 1"),
    "fractions_over_one": (b"abc", ["--val_frac", "0.9", "--test_frac", "0.3"], "below 1"),
    "negative_fraction": (b"abc", ["--val_frac", "-0.1"], "--val_frac"),
    "nan_fraction": (b"abc", ["--test_frac", "nan"], "--test_frac"),
    "empty_input": (b"", [], "empty"),
    "only_a_partial_char": (b"\xe4\xb8", [], "no tokens"),
    "bad_flag": (b"abc", ["--no_such_flag"], "no_such_flag"),
    "bad_float": (b"abc", ["--val_frac", "lots"], "val_frac"),
    "utf16_without_bom": (b"hello", ["--encoding", "utf-16"],
                          "cannot decode as utf-16: UTF-16 stream does not start with BOM"),
    "bad_punycode": (b"Hello\n", ["--encoding", "punycode"],
                     "cannot decode as punycode: Invalid extended code point '\\n'"),
    "incomplete_punycode": (b"a-b9", ["--encoding", "punycode"], "incomplete punicode"),
    "flag_typo": (b"abc", ["--inputtxt", "x"], "(did you mean --input_txt? see "
                                               "torchrnn-preprocess -h)"),
    "single_dash_typo": (b"abc", ["-val_fac", "0.1"], "(did you mean -val_frac?"),
}


def _bad_run(tmp_path, capsys, content, extra, h5=None, js=None):
    src = tmp_path / "in.txt"
    if content is not None:
        src.write_bytes(content)
    h5 = h5 or tmp_path / "old.h5"
    js = js or tmp_path / "old.json"
    status = main(["--input_txt", str(src), "--output_h5", str(h5),
                   "--output_json", str(js)] + extra)
    return status, capsys.readouterr()


def _assert_one_error_line(status, out, expected):
    assert status != 0
    assert out.out == ""
    lines = out.err.splitlines()
    assert len(lines) == 1, out.err
    assert lines[0].startswith("torchrnn-preprocess: error: ")
    assert expected in lines[0]
    assert "Traceback" not in out.err


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_one_line_and_outputs_intact(tmp_path, capsys, name):
    content, extra, expected = BAD[name]
    (tmp_path / "old.h5").write_bytes(b"previous h5")
    (tmp_path / "old.json").write_bytes(b"previous json")
    before = sorted(os.listdir(tmp_path))
    status, out = _bad_run(tmp_path, capsys, content, extra)
    _assert_one_error_line(status, out, expected)
    assert (tmp_path / "old.h5").read_bytes() == b"previous h5"
    assert (tmp_path / "old.json").read_bytes() == b"previous json"
    after = sorted(p for p in os.listdir(tmp_path) if p != "in.txt")
    assert after == [p for p in before if p != "in.txt"]  # no temporary files left over


def test_decode_error_names_bytes_and_offset_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(preprocess_module, "CHUNK_BYTES", 3)
    src = tmp_path / "in.txt"
    src.write_bytes("\u00e9\u00e9\u00e9\u00e9".encode("utf-8") + b"\xff!")
    with pytest.raises(TorchRNNError) as err:
        preprocess(str(src), str(tmp_path / "o.h5"), str(tmp_path / "o.json"))
    message = str(err.value)
    assert "byte offset 8" in message and "0xff" in message and str(src) in message


@pytest.mark.parametrize("which", ["h5", "json"])
def test_output_in_missing_directory(tmp_path, capsys, which):
    missing = tmp_path / "no" / "such" / ("o." + which)
    kwargs = {"h5": missing} if which == "h5" else {"js": missing}
    status, out = _bad_run(tmp_path, capsys, b"abc", [], **kwargs)
    _assert_one_error_line(status, out, "does not exist")


def test_same_output_paths(tmp_path, capsys):
    status, out = _bad_run(tmp_path, capsys, b"abc", [], h5=tmp_path / "x", js=tmp_path / "x")
    _assert_one_error_line(status, out, "different files")


def test_input_is_a_directory(tmp_path, capsys):
    status = main(["--input_txt", str(tmp_path), "--output_h5", str(tmp_path / "o.h5"),
                   "--output_json", str(tmp_path / "o.json")])
    _assert_one_error_line(status, capsys.readouterr(), "directory")


def test_unreadable_input(tmp_path, capsys, monkeypatch):
    # chmod 0 does not stop root (CI runs as root), so make the read itself fail.
    def denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    from torchrnn_py.fileio import inputs                # preprocess reads through it
    monkeypatch.setattr(inputs, "open", denied, raising=False)
    status, out = _bad_run(tmp_path, capsys, b"abc", [])
    _assert_one_error_line(status, out, "Permission denied")


def test_failure_while_writing_keeps_old_outputs(tmp_path, monkeypatch):
    src = tmp_path / "in.txt"
    src.write_bytes(b"some text to write" * 100)
    (tmp_path / "o.h5").write_bytes(b"previous h5")
    (tmp_path / "o.json").write_bytes(b"previous json")

    def broken_write(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(preprocess_module, "_write_ids", broken_write)
    with pytest.raises(TorchRNNError, match="No space left"):
        preprocess(str(src), str(tmp_path / "o.h5"), str(tmp_path / "o.json"))
    assert (tmp_path / "o.h5").read_bytes() == b"previous h5"
    assert (tmp_path / "o.json").read_bytes() == b"previous json"
    assert sorted(os.listdir(tmp_path)) == ["in.txt", "o.h5", "o.json"]


def test_bad_input_as_a_real_process(tmp_path):
    src = tmp_path / "in.txt"
    src.write_bytes(b"abc\xff")
    out = subprocess.run([sys.executable, "-m", "torchrnn_py.preprocess", "--input_txt",
                          str(src), "--output_h5", str(tmp_path / "o.h5"),
                          "--output_json", str(tmp_path / "o.json")],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stdout == "" and len(out.stderr.splitlines()) == 1
    assert "Traceback" not in out.stderr and "byte offset 3" in out.stderr
    assert not (tmp_path / "o.h5").exists() and not (tmp_path / "o.json").exists()


def test_library_rejects_bad_fractions_before_reading(tmp_path):
    for val_frac, test_frac in [(0.6, 0.4), (-0.01, 0.1), (math.inf, 0.0)]:
        with pytest.raises(TorchRNNError):
            preprocess(str(tmp_path / "missing.txt"), str(tmp_path / "o.h5"),
                       str(tmp_path / "o.json"), val_frac=val_frac, test_frac=test_frac)


def test_outputs_never_overwrite_the_input(tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_bytes(b"hello world\n" * 10)
    status = main(["--input_txt", str(src), "--output_h5", str(src),
                   "--output_json", str(tmp_path / "o.json")])
    _assert_one_error_line(status, capsys.readouterr(), "overwrite")
    assert src.read_bytes() == b"hello world\n" * 10


# ------------------------------------------------------- issue 9: flags, help, full disks

def test_single_dash_flags_as_torch_rnn_users_type_them(tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_bytes(b"some text, some more text\n" * 20)
    assert main(["-input_txt", str(src), "-output_h5", str(tmp_path / "a.h5"),
                 "-output_json", str(tmp_path / "a.json"), "-val_frac", "0.2",
                 "-test_frac", "0.05", "-encoding", "latin-1", "-quiet"]) == 0
    assert capsys.readouterr() == ("", "")
    assert main(["--input_txt", str(src), "--output_h5", str(tmp_path / "b.h5"),
                 "--output_json", str(tmp_path / "b.json"), "--val_frac", "0.2",
                 "--test_frac", "0.05", "--encoding", "latin-1", "--quiet"]) == 0
    (single, single_json), (double, double_json) = (
        read_outputs(tmp_path / f"{x}.h5", tmp_path / f"{x}.json") for x in "ab")
    assert single_json == double_json
    for name in SPLITS:
        np.testing.assert_array_equal(single[name], double[name])
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert f["val"].shape == (104,) and f["test"].shape == (26,)   # of 520 tokens


def test_help_describes_every_flag():
    text = preprocess_cli.build_parser().format_help()
    flat = " ".join(text.split())
    for action in preprocess_cli.build_parser()._actions:
        if action.dest == "help":
            continue
        assert action.help and len(action.help) > 20, action.dest
        assert f"--{action.dest}" in text and f"-{action.dest}" in text
        if action.default not in (None, False):
            assert f"(default: {action.default})" in flat, action.dest
    assert "0 <= F < 1" in flat and "'bytes'" in flat


H5PY_DISK_FULL = ("Can't synchronously write data (file write failed: time = Tue Dec  1 "
                  "08:29:14 2026\n, filename = '/data/.o.h5.x1y2.tmp', file descriptor = 5, "
                  "errno = 28, error message = 'No space left on device', buf = "
                  "0x55d1c2a3b4c0, total write size = 524288, bytes this sub-write = 524288, "
                  "bytes actually written = 18446744073709551615, offset = 2048)")


def test_hdf5_disk_full_is_one_line_naming_the_output(tmp_path, capsys, monkeypatch):
    # h5py's own message spans two lines and shows HDF5's internals
    src = tmp_path / "in.txt"
    src.write_bytes(b"some text to write" * 100)
    (tmp_path / "o.h5").write_bytes(b"previous h5")

    def full_disk(*args, **kwargs):
        raise OSError(H5PY_DISK_FULL)

    monkeypatch.setattr(preprocess_module, "_write_ids", full_disk)
    status = main(["--input_txt", str(src), "--output_h5", str(tmp_path / "o.h5"),
                   "--output_json", str(tmp_path / "o.json")])
    out = capsys.readouterr()
    assert status == 1 and out.out == ""
    assert out.err == (f"torchrnn-preprocess: error: {tmp_path / 'o.h5'}: cannot write HDF5 "
                       f"output file: No space left on device\n")
    assert sorted(os.listdir(tmp_path)) == ["in.txt", "o.h5"]
    assert (tmp_path / "o.h5").read_bytes() == b"previous h5"


def test_real_hdf5_write_failure_is_one_line(tmp_path):
    # a real failing write without root: the file-size limit (Python ignores SIGXFSZ)
    import resource
    src = tmp_path / "in.txt"
    src.write_bytes((GOLDEN / "shakespeare200k.txt").read_bytes()[:100000])
    limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))  # noqa: E731
    result = subprocess.run(
        [sys.executable, "-m", "torchrnn_py.preprocess", "--input_txt", str(src),
         "--output_h5", str(tmp_path / "o.h5"), "--output_json", str(tmp_path / "o.json")],
        cwd=REPO, capture_output=True, text=True, timeout=120, preexec_fn=limit)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (f"torchrnn-preprocess: error: {tmp_path / 'o.h5'}: cannot write "
                             f"HDF5 output file: File too large\n")
    assert os.listdir(tmp_path) == ["in.txt"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_summary_to_a_full_disk_names_stdout(tmp_path):
    src = tmp_path / "in.txt"
    src.write_bytes(b"abc" * 10)
    with open("/dev/full", "wb") as full:
        result = subprocess.run(
            [sys.executable, "-m", "torchrnn_py.preprocess", "-input_txt", str(src),
             "-output_h5", str(tmp_path / "o.h5"), "-output_json", str(tmp_path / "o.json")],
            cwd=REPO, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == ("torchrnn-preprocess: error: stdout: cannot "
                                              "write: No space left on device")
