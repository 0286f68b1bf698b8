"""novel_substrings: the original's exact fractions and printed lines, fast; clear errors."""
import contextlib
import io
import pathlib
import random
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import GOLDEN
from torchrnn_py import novel_substrings as ns_module
from torchrnn_py.cli.novel_substrings import main
from torchrnn_py.novel_substrings import novel_fractions, read_text

REPO = pathlib.Path(__file__).resolve().parent.parent
SHAKESPEARE = REPO / "torchrnn_py" / "corpus" / "tiny-shakespeare.txt"
PROG = "torchrnn-novel-substrings"


# ------------------------------------------------------------------ reference

def original_lines(s1, s2, max_length=49):
    """The original script's loop, transcribed: what it prints, as a list of lines.

    Like the original it raises ZeroDivisionError at the first length above len(s1).
    """
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        for L in range(1, max_length + 1):
            num_searched = 0
            num_found = 0
            for i in range(len(s1) - L + 1):
                num_searched += 1
                sub = s1[i:(i + L)]
                assert len(sub) == L
                if sub in s2:
                    num_found += 1
            novel_frac = (num_searched - num_found) / float(num_searched)
            print(L, novel_frac)
    return buffer.getvalue().splitlines()


def original_fractions(s1, s2, max_length=49):
    """The transcription's numbers, up to the last length it can compute."""
    lines = original_lines(s1, s2, min(max_length, len(s1)))
    return [(int(L), float(frac)) for L, frac in (line.split() for line in lines)]


def codes(text, dtype=np.int64):
    return np.array([ord(c) for c in text], dtype=dtype)


def shakespeare():
    return SHAKESPEARE.read_text(encoding="utf-8")


def real_sample(training, seed=0):
    """500 characters: 250 copied from the training text, then 250 with shuffled words."""
    rng = random.Random(seed)
    copied = training[5000:5250]
    words = training[12000:12400].split(" ")
    rng.shuffle(words)
    return copied + " ".join(words)[:250]


# ------------------------------------------------------------------ agreement

small_text = st.text(alphabet="ab\nç", max_size=40)


@settings(max_examples=200, deadline=None)
@given(small_text.filter(bool), st.text(alphabet="abc\nç", max_size=80),
       st.integers(1, 49))
def test_agrees_with_original_on_small_texts(sampled, training, max_length):
    expected = original_fractions(sampled, training, max_length)
    assert novel_fractions(sampled, training, max_length) == expected
    assert novel_fractions(codes(sampled), codes(training, np.uint32), max_length) == expected


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="ab", min_size=1, max_size=30), st.text(alphabet="ab", max_size=60),
       st.sampled_from([0, 1, 2, 2 ** 63]))
def test_degenerate_hash_bases_stay_exact(sampled, training, base):
    expected = original_fractions(sampled, training)
    assert novel_fractions(sampled, training, hash_base=base) == expected
    assert novel_fractions(codes(sampled), codes(training), hash_base=base) == expected


def test_agrees_with_original_on_real_text():
    training = shakespeare()[:20000]
    sampled = real_sample(training)
    expected = original_fractions(sampled, training)
    got = novel_fractions(sampled, training)
    assert got == expected
    assert got[0][1] == 0.0 and 0 < got[10][1] < 1  # the test is not trivial


def test_agrees_with_original_on_a_real_model_sample():
    training = (GOLDEN / "shakespeare200k.txt").read_text(encoding="utf-8")[:20000]
    sampled = (GOLDEN / "samples" / "lstm_small_cp_159_t0.8_seed123_afternn.txt").read_text(
        encoding="utf-8")
    assert novel_fractions(sampled, training) == original_fractions(sampled, training)


def test_non_latin_text():
    training = "春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。🌸春🌸"
    sampled = "处处闻啼鸟，花落知多少🌸春眠🌸春"
    assert novel_fractions(sampled, training) == original_fractions(sampled, training)


# ------------------------------------------------------------------ hash collisions

def test_every_hash_colliding_still_exact(monkeypatch):
    """With every character hashed to 0, every L-gram collides with every other one: the
    verification and the exact fallback alone must give the original's numbers."""
    calls = []
    real_find = ns_module._ExactSearch.find

    def counting_find(self, start, length):
        calls.append(length)
        return real_find(self, start, length)

    monkeypatch.setattr(ns_module, "_hash_values", lambda c: np.zeros(len(c), np.uint64))
    monkeypatch.setattr(ns_module._ExactSearch, "find", counting_find)
    training = shakespeare()[:3000]
    sampled = training[1000:1100] + "".join(random.Random(1).sample(training[2000:2100], 100))
    expected = original_fractions(sampled, training)
    assert novel_fractions(sampled, training) == expected
    assert calls, "the collision fallback was never used"
    calls.clear()
    assert novel_fractions(codes(sampled), codes(training)) == expected  # aligned byte search
    assert calls


def test_crowded_lookup_table_still_exact(monkeypatch):
    """A 2-slot table: nearly every hash loses its slot and goes to the binary search."""
    monkeypatch.setattr(ns_module, "_TABLE_MAX_BITS", 1)
    training = shakespeare()[:20000]
    sampled = real_sample(training, seed=3)
    assert novel_fractions(sampled, training) == original_fractions(sampled, training)


def test_array_fallback_ignores_matches_across_values(monkeypatch):
    """The fallback for integer arrays searches bytes: a hit straddling two values is none."""
    monkeypatch.setattr(ns_module, "_hash_values", lambda c: np.zeros(len(c), np.uint64))
    training = np.array([0x0100, 0x0001, 0x0100, 0x0001], dtype="<u2")
    sampled = np.array([0x0101, 0x0001], dtype="<u2")
    assert sampled[:1].tobytes() in training.tobytes()  # at byte offset 1, misaligned
    assert novel_fractions(sampled, training, 2) == [(1, 0.5), (2, 1.0)]


# ------------------------------------------------------------------ edges

def test_lengths_beyond_the_sample_are_left_out():
    sampled, training = "abcab", "xabcabx"
    with pytest.raises(ZeroDivisionError):  # what the original does at L = 6
        original_lines(sampled, training, 6)
    assert novel_fractions(sampled, training) == original_fractions(sampled, training, 5)
    assert [L for L, _ in novel_fractions(sampled, training)] == [1, 2, 3, 4, 5]


def test_empty_inputs_in_the_library():
    assert novel_fractions("", "abc") == []
    assert novel_fractions("ab", "") == [(1, 1.0), (2, 1.0)]
    assert novel_fractions(np.array([], dtype=np.int64), np.array([1])) == []


def test_rejects_bad_arguments():
    with pytest.raises(TypeError):
        novel_fractions(b"abc", "abc")
    with pytest.raises(TypeError):
        novel_fractions(np.zeros((2, 2), dtype=int), "abc")
    with pytest.raises(TypeError):
        novel_fractions(np.array([1.5]), "abc")
    with pytest.raises(TypeError):  # uint64 against signed: no exact common type
        novel_fractions(np.array([1], np.uint64), np.array([1], np.int64))
    with pytest.raises(ns_module.TorchRNNError):
        novel_fractions("abc", "abc", 0)


def test_read_text_is_python3_text_mode(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes("\ufeffa\r\nb\rc\n\r\n\u00e9\U0001F600".encode("utf-8"))
    with open(path, encoding="utf-8") as f:
        assert read_text(str(path), "text") == f.read()


# ------------------------------------------------------------------ command line

def _files(tmp_path, sampled, training):
    s, t = tmp_path / "sampled.txt", tmp_path / "training.txt"
    s.write_bytes(sampled if isinstance(sampled, bytes) else sampled.encode("utf-8"))
    t.write_bytes(training if isinstance(training, bytes) else training.encode("utf-8"))
    return str(s), str(t)


def test_main_prints_the_originals_lines(tmp_path, capsys):
    training = shakespeare()[:2000]
    sampled = training[100:160] + "zebra quux Romeo, thou art" + training[700:760]
    s, t = _files(tmp_path, sampled, training)
    assert main([s, t]) == 0
    out = capsys.readouterr()
    assert out.err == ""
    assert out.out.splitlines() == original_lines(sampled, training)
    assert out.out.splitlines()[0] == "1 0.0136986301369863"  # 2 of 146 characters novel
    assert main([s, t, "--max_length", "7"]) == 0
    assert capsys.readouterr().out.splitlines() == original_lines(sampled, training, 7)


def test_python_dash_m(tmp_path):
    s, t = _files(tmp_path, "to be or not", "to be, or not to be")
    out = subprocess.run([sys.executable, "-m", "torchrnn_py.novel_substrings", s, t,
                          "--max_length", "4"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == original_lines("to be or not", "to be, or not to be", 4)


def test_main_stops_at_the_sample_length(tmp_path, capsys):
    s, t = _files(tmp_path, "abca", "abcabc")
    assert main([s, t]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines() == original_lines("abca", "abcabc", 4)
    lines = out.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{PROG}: note: ")
    assert "only 4 characters" in lines[0]


BAD = {
    "missing_sampled": (None, "abc", [], "not found"),
    "empty_sampled": ("", "abc", [], "sampled text file is empty"),
    "empty_training": ("abc", "", [], "training text file is empty"),
    "bad_utf8": (b"ab\xe2\x82c", "abc", [], "byte offset 2"),
    "bad_utf8_training": ("abc", b"abc\xff", [], "byte offset 3"),
    "zero_max_length": ("abc", "abc", ["--max_length", "0"], "at least 1"),
    "word_max_length": ("abc", "abc", ["--max_length", "lots"], "max_length"),
    "unknown_flag": ("abc", "abc", ["--frobnicate"], "frobnicate"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_is_one_line(tmp_path, capsys, name):
    sampled, training, extra, expected = BAD[name]
    s, t = _files(tmp_path, sampled or "", training)
    if sampled is None:
        pathlib.Path(s).unlink()
    status = main([s, t] + extra)
    _assert_one_error_line(status, capsys.readouterr(), expected)


def test_directory_and_missing_argument(tmp_path, capsys):
    s, _ = _files(tmp_path, "abc", "abc")
    _assert_one_error_line(main([s, str(tmp_path)]), capsys.readouterr(), "directory")
    _assert_one_error_line(main([s]), capsys.readouterr(), "training_text")


def _assert_one_error_line(status, out, expected):
    assert status != 0
    assert out.out == ""
    lines = out.err.splitlines()
    assert len(lines) == 1, out.err
    assert lines[0].startswith(f"{PROG}: error: ")
    assert expected in lines[0]
    assert "Traceback" not in out.err
