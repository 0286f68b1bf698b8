"""The sample command (sample.lua's command line) and its new flags: verbose lines, the GPU
fallback, -stream, -output_file, -num_samples, byte vocabularies, -bcl_table, and bad input
as one line on stderr."""
import contextlib
import errno
import io
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
import torch

from conftest import GOLDEN
from torchrnn_py.cli import sample as sample_cli
from torchrnn_py import bintoutf8
from torchrnn_py import sample as sample_mod
from torchrnn_py import sample_output
from torchrnn_py.checkpoint import load_model, save_checkpoint
from torchrnn_py.errors import TorchRNNError
from torchrnn_py.preprocess import preprocess
from torchrnn_py.t7 import write_t7
from torchrnn_py.train import train

CP = GOLDEN / "checkpoints" / "lstm_small_cp_159.t7"
SAMPLES = GOLDEN / "samples"
START = "To be, or not to be"
CPU = ["-gpu", "-1"]
SAMPLE_LUA_FLAGS = ["checkpoint", "length", "start_text", "sample", "temperature", "gpu",
                    "gpu_backend", "verbose"]


def run(argv, capsys):
    """main(argv) -> (exit status, stdout, stderr)."""
    status = sample_cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def golden(name):
    return (SAMPLES / name).read_bytes().decode("utf-8")


# -- the original's output -----------------------------------------------------------------

def test_verbose_lines_without_start_text(capsys):
    status, out, err = run(["-checkpoint", CP, "-length", 300, "-sample", 0, "-verbose", 1]
                           + CPU, capsys)
    assert status == 0 and err == ""
    expected = golden("lstm_small_cp_159_argmax_nostart.txt")
    assert out == "Running in CPU mode\nSeeding with uniform probabilities\n" + expected + "\n"


def test_verbose_lines_with_start_text(capsys):
    status, out, err = run(["-checkpoint", CP, "-length", 300, "-sample", 0, "-verbose", 1,
                            "-start_text", START] + CPU, capsys)
    assert status == 0 and err == ""
    expected = golden("lstm_small_cp_159_argmax_start.txt")
    assert out == f'Running in CPU mode\nSeeding with: "{START}"\n' + expected + "\n"


def test_not_verbose_prints_only_the_text(capsys):
    status, out, err = run(["-checkpoint", CP, "-length", 40, "-seed", 1] + CPU, capsys)
    assert status == 0 and err == ""
    assert out == load_model(CP).sample(40, seed=1) + "\n"


def test_gpu_on_a_cpu_only_machine_warns_once_and_samples(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)   # even on a GPU host
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    status, out_cpu, _ = run(["-checkpoint", CP, "-length", 100, "-seed", 8] + CPU, capsys)
    assert status == 0
    status, out, err = run(["-checkpoint", CP, "-length", 100, "-seed", 8, "-gpu", 0], capsys)
    assert status == 0
    lines = err.splitlines()
    assert len(lines) == 1 and "GPU" in lines[0] and "CPU" in lines[0]
    assert "Traceback" not in err
    assert out == out_cpu and len(out) == 101


# -- new flags -----------------------------------------------------------------------------

def test_stream_gives_the_same_text(capsys):
    argv = ["-checkpoint", CP, "-length", 300, "-seed", 123, "-temperature", 0.8] + CPU
    status, plain, _ = run(argv, capsys)
    assert status == 0
    status, streamed, err = run(argv + ["-stream", 1], capsys)
    assert status == 0 and err == ""
    assert streamed == plain == golden("lstm_small_cp_159_t0.8_seed123_afternn.txt") + "\n"


class Recorder:
    """A binary stream that records each write (and counts flushes)."""

    def __init__(self):
        self.writes, self.flushes = [], 0

    def write(self, data):
        self.writes.append(bytes(data))
        return len(data)

    def flush(self):
        self.flushes += 1


def test_stream_writes_incrementally():
    streamed = Recorder()
    sample_mod.sample(out=streamed, checkpoint=str(CP), length=50, seed=5, gpu=-1, stream=1)
    text = b"".join(streamed.writes)
    expected = load_model(CP).sample(50, seed=5)
    assert text == expected.encode() + b"\n"
    assert len(streamed.writes) > 1                   # not all at the end
    assert len([w for w in streamed.writes if w != b"\n"]) >= 10
    # same text when not streaming
    buffered = Recorder()
    sample_mod.sample(out=buffered, checkpoint=str(CP), length=50, seed=5, gpu=-1)
    assert b"".join(buffered.writes) == text


def test_library_sample_returns_one_type(tmp_path):
    """sample() always returns Samples: the texts when kept, the files when written."""
    kept = sample_mod.sample(checkpoint=str(CP), length=40, seed=5, gpu=-1)
    assert isinstance(kept, sample_mod.Samples)
    assert kept.texts == [load_model(CP).sample(40, seed=5)] and kept.paths == []
    batch = sample_mod.sample(checkpoint=str(CP), length=40, seed=5, gpu=-1, num_samples=2)
    assert batch.texts == load_model(CP).sample(40, seed=5, num_samples=2)
    path = tmp_path / "s.txt"
    written = sample_mod.sample(checkpoint=str(CP), length=40, seed=5, gpu=-1,
                                output_file=str(path))
    assert written == sample_mod.Samples(texts=[], paths=[str(path)])
    assert path.read_text() == kept.texts[0]
    streamed = sample_mod.sample(out=Recorder(), checkpoint=str(CP), length=40, gpu=-1)
    assert streamed == sample_mod.Samples(texts=[], paths=[])


def test_output_file_has_no_trailing_newline(tmp_path, capsys):
    path = tmp_path / "sample.txt"
    status, out, err = run(["-checkpoint", CP, "-length", 300, "-seed", 123,
                            "-output_file", path] + CPU, capsys)
    assert status == 0 and out == "" and err == f"wrote {path}\n"
    assert path.read_bytes() == golden("lstm_small_cp_159_t1_seed123_afternn.txt").encode()


def test_output_file_with_stream(tmp_path, capsys):
    path = tmp_path / "sample.txt"
    status, _, err = run(["-checkpoint", CP, "-length", 300, "-sample", 0, "-stream", 1,
                          "-start_text", START, "-output_file", path] + CPU, capsys)
    assert status == 0 and err == f"wrote {path}\n"
    assert path.read_bytes() == golden("lstm_small_cp_159_argmax_start.txt").encode()


def test_num_samples_to_stdout(capsys):
    expected = load_model(CP).sample(80, seed=21, num_samples=3)
    assert len(set(expected)) == 3
    status, out, err = run(["-checkpoint", CP, "-length", 80, "-seed", 21,
                            "-num_samples", 3] + CPU, capsys)
    assert status == 0 and err == ""
    assert out == "".join(f"--- sample {k} of 3 ---\n{text}\n"
                          for k, text in enumerate(expected, start=1))


def test_many_samples_to_stdout_need_one_temporary_file(capsys):
    """1,200 samples with 200 file descriptors allowed: samples 2..K share one spool (a
    file each ran out of descriptors near the limit), and come out whole and in order,
    across several flushes (FLUSH_EVERY lowered to 7 tokens)."""
    K, length = 1200, 20
    expected = load_model(CP).sample(length, seed=5, num_samples=K)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (200, hard))
    flush_every, sample_output.FLUSH_EVERY = sample_output.FLUSH_EVERY, 7
    try:
        status, out, err = run(["-checkpoint", CP, "-length", length, "-seed", 5,
                                "-num_samples", K] + CPU, capsys)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        sample_output.FLUSH_EVERY = flush_every
    assert (status, err) == (0, "")
    assert out == "".join(f"--- sample {k} of {K} ---\n{text}\n"
                          for k, text in enumerate(expected, start=1))


def test_num_samples_beyond_the_machine_is_refused_before_anything(tmp_path, capsys):
    out = tmp_path / "out.txt"
    status, stdout, err = run(["-checkpoint", CP, "-length", 5, "-num_samples", 1e12,
                               "-output_file", out] + CPU, capsys)
    assert (status, stdout) == (1, "") and err.count("\n") == 1
    assert "-num_samples 1000000000000 needs about" in err and "sample fewer at a time" in err
    assert list(tmp_path.iterdir()) == []
    model = load_model(CP)
    per_stream = sample_mod.stream_bytes(model, 100)
    sample_mod.check_streams_fit(model, 1000, 100, memory=2000 * per_stream)   # half: fits
    with pytest.raises(TorchRNNError, match="-num_samples 1001 needs"):
        sample_mod.check_streams_fit(model, 1001, 100, memory=2000 * per_stream)
    sample_mod.check_streams_fit(model, 10 ** 12, 100, memory=None)             # not known


def test_num_samples_to_files(tmp_path, capsys):
    expected = load_model(CP).sample(80, START, seed=22, num_samples=3)
    status, out, err = run(["-checkpoint", CP, "-length", 80, "-seed", 22, "-num_samples", 3,
                            "-start_text", START, "-output_file", tmp_path / "out.txt"] + CPU,
                           capsys)
    assert status == 0 and out == ""
    assert err.splitlines() == [f"wrote {tmp_path / f'out_{k}.txt'}" for k in (1, 2, 3)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out_1.txt", "out_2.txt",
                                                          "out_3.txt"]
    for k in range(3):
        assert (tmp_path / f"out_{k + 1}.txt").read_bytes() == expected[k].encode()


# -- byte vocabularies ---------------------------------------------------------------------

def _train_tiny(directory, input_txt, encoding):
    h5, js = directory / "data.h5", directory / "data.json"
    preprocess(str(input_txt), str(h5), str(js), encoding=encoding)
    result = train(input_h5=str(h5), input_json=str(js), rnn_size=16, wordvec_size=8,
                   num_layers=1, batch_size=2, seq_length=10, max_epochs=1,
                   checkpoint_every=0, gpu=-1, seed=1,
                   checkpoint_name=str(directory / "tmp" / "cp"))
    checkpoint = directory / "tmp" / f"cp_{result['i']}.t7"
    assert checkpoint.is_file()
    return checkpoint


@pytest.fixture(scope="module")
def byte_model(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bytes")
    data = np.random.default_rng(3).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    assert max(data) > 127
    (directory / "data.bin").write_bytes(data)
    checkpoint = _train_tiny(directory, directory / "data.bin", "bytes")
    vocab = load_model(checkpoint).vocab
    assert vocab.is_bytes and "[200]" in vocab.token_to_idx     # preprocess's [N] names
    return checkpoint


def byte_name(value):
    """What the original preprocess calls byte ``value`` in its JSON."""
    return chr(value) if value < 128 else f"[{value}]"


def test_byte_vocabulary_output_file_gets_raw_bytes(byte_model, tmp_path, capsys):
    length = 300
    path = tmp_path / "out.bin"
    status, out, err = run(["-checkpoint", byte_model, "-length", length, "-seed", 7,
                            "-output_file", path] + CPU, capsys)
    assert status == 0 and out == "" and err == f"wrote {path}\n"
    raw = path.read_bytes()
    assert len(raw) == length                         # one byte per sampled token
    assert max(raw) > 127
    # stdout shows the same sample as the vocabulary's names ([N] for bytes above 127)
    status, text, err = run(["-checkpoint", byte_model, "-length", length, "-seed", 7] + CPU,
                            capsys)
    assert status == 0 and err == ""
    assert text.endswith("\n")
    assert "".join(byte_name(b) for b in raw) == text[:-1]


@pytest.fixture(scope="module")
def bcl_model(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bcl")
    data = np.random.default_rng(4).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    encoded, table = bintoutf8.encode_bytes(data, "bcl")
    assert len(encoded) == len(data)
    # a newline every 20 characters: a token that is not in the table
    text = "\n".join(encoded[i:i + 20] for i in range(0, len(encoded), 20)) + "\n"
    (directory / "data.txt").write_bytes(text.encode("utf-8"))
    bintoutf8.write_table(str(directory / "data.bcl"), table)
    checkpoint = _train_tiny(directory, directory / "data.txt", "utf-8")
    return checkpoint, directory / "data.bcl", table


def bcl_byte(char, table):
    """The byte a BCL character stands for, or None: slot k is '#'..'~' (k = 0..91), then
    U+3900 + (k - 92); the table's entry k is the byte value of slot k."""
    cp = ord(char)
    if 0x23 <= cp <= 0x7E:
        slot = cp - 0x23
    elif 0x3900 <= cp < 0x3900 + 256 - 92:
        slot = 92 + cp - 0x3900
    else:
        return None
    return table[slot]


def test_bcl_table_output_file_gets_decoded_bytes(bcl_model, tmp_path, capsys):
    checkpoint, table_path, table = bcl_model
    length = 400
    path = tmp_path / "out.bin"
    status, out, err = run(["-checkpoint", checkpoint, "-length", length, "-seed", 9,
                            "-bcl_table", table_path, "-output_file", path] + CPU, capsys)
    assert status == 0 and out == ""
    assert len(err.splitlines()) == 2 and "Traceback" not in err
    warning, wrote = err.splitlines()
    assert wrote == f"wrote {path}"
    raw = path.read_bytes()
    # the same sample as text
    status, text, _ = run(["-checkpoint", checkpoint, "-length", length, "-seed", 9] + CPU,
                          capsys)
    assert status == 0
    text = text[:-1]
    assert len(text) == length
    not_in_table = [c for c in text if bcl_byte(c, table) is None]
    assert not_in_table and set(not_in_table) == {"\n"}
    assert len(raw) == length - len(not_in_table)
    expected = bytes(b for b in (bcl_byte(c, table) for c in text) if b is not None)
    assert raw == expected
    assert raw == bintoutf8.decode_text(text, "bcl", table)[0]
    # the warning counts the newlines actually sampled, not the vocabulary's
    assert warning == (f"torchrnn-sample: warning: {len(not_in_table)} sampled character(s) "
                           f"are not in {table_path} and were left out of the bytes (e.g. "
                           f"newlines)")


def test_bcl_table_without_output_file_prints_text(bcl_model, capsys):
    checkpoint, table_path, _ = bcl_model
    args = ["-checkpoint", checkpoint, "-length", 100, "-seed", 9] + CPU
    status, with_table, _ = run(args + ["-bcl_table", table_path], capsys)
    status_plain, plain, _ = run(args, capsys)
    assert status == status_plain == 0
    assert with_table == plain and plain.endswith("\n")


# -- bad input -----------------------------------------------------------------------------

@pytest.fixture
def bad_files(tmp_path):
    corrupt = tmp_path / "corrupt.t7"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096,
                                                          dtype=np.uint8).tobytes())
    plain = tmp_path / "plain.t7"
    write_t7(str(plain), {"a": 1.0, "b": "not a model"})
    return {"missing": tmp_path / "nope.t7", "corrupt": corrupt, "plain": plain,
            "nodir": tmp_path / "no" / "such" / "dir" / "out.txt"}


BAD_CASES = {
    "missing_checkpoint": (["-checkpoint", "{missing}"], r"nope\.t7"),
    "corrupt_checkpoint": (["-checkpoint", "{corrupt}"], r"corrupt\.t7"),
    "not_torch_rnn": (["-checkpoint", "{plain}"], r"plain\.t7"),
    "unknown_character": (["-checkpoint", "{cp}", "-start_text", "To be\u00a7"], "\u00a7"),
    "temperature_0": (["-checkpoint", "{cp}", "-temperature", "0"], r"temperature"),
    "temperature_negative": (["-checkpoint", "{cp}", "-temperature", "-0.5"], r"temperature"),
    "length_0": (["-checkpoint", "{cp}", "-length", "0"], r"length"),
    "length_below_start": (["-checkpoint", "{cp}", "-length", "5", "-start_text", START],
                           r"length"),
    "output_dir_missing": (["-checkpoint", "{cp}", "-output_file", "{nodir}"],
                           r"does not exist|[Nn]o such"),
    "unknown_flag": (["-checkpoint", "{cp}", "-bogus_flag", "1"], r"bogus_flag"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_is_one_line_on_stderr(case, bad_files, capsys):
    argv, pattern = BAD_CASES[case]
    names = dict(bad_files, cp=CP)
    argv = [a.format(**names) for a in argv] + ["-length", "50"] * ("-length" not in argv) \
        + CPU
    status, out, err = run(argv, capsys)
    assert status != 0
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert re.search(pattern, lines[0]), lines[0]
    assert out == ""
    assert not bad_files["nodir"].parent.exists()


def test_help_lists_every_sample_lua_flag():
    result = subprocess.run([sys.executable, "-m", "torchrnn_py.sample", "-h"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for flag in SAMPLE_LUA_FLAGS + ["seed", "stream", "output_file", "num_samples",
                                    "bcl_table"]:
        assert re.search(rf"-{flag}\b", result.stdout), flag


def test_defaults_are_sample_lua_defaults():
    assert {k: sample_mod.DEFAULTS[k] for k in SAMPLE_LUA_FLAGS} == {
        "checkpoint": "cv/checkpoint_4000.t7", "length": 2000, "start_text": "",
        "sample": 1, "temperature": 1, "gpu": 0, "gpu_backend": "cuda", "verbose": 0}


# -- fixes from review ------------------------------------------------------------------------

def test_verbose_above_one_prints_the_seeding_line_only(capsys):
    # sample.lua prints the backend at -verbose 1 only, LM:sample seeds "if verbose > 0"
    status, out, _ = run(["-checkpoint", CP, "-length", 20,
                          "-verbose", 2, "-seed", 1] + CPU, capsys)
    lines = out.splitlines()
    assert status == 0 and lines[0] == "Seeding with uniform probabilities"
    assert "Running in CPU mode" not in out


def test_output_file_never_overwrites_the_checkpoint(tmp_path, capsys):
    checkpoint = tmp_path / "cp.t7"
    checkpoint.write_bytes(CP.read_bytes())
    before = checkpoint.read_bytes()
    status, _, err = run(["-checkpoint", checkpoint, "-length", 10, "-output_file",
                          checkpoint] + CPU, capsys)
    assert status != 0 and "overwrite" in err and len(err.strip().splitlines()) == 1
    assert checkpoint.read_bytes() == before


def test_bcl_table_without_output_file_warns(bcl_model, capsys):
    checkpoint, table_path, _ = bcl_model
    status, out, err = run(["-checkpoint", checkpoint, "-length", 30, "-seed", 1,
                            "-bcl_table", table_path] + CPU, capsys)
    assert status == 0 and len(out) == 31
    assert "-bcl_table only applies with -output_file" in err


# -- issue 9: what was written, NaN and infinity, broken models, separators, signals, full disks

def test_wrote_line_silenced_by_an_explicit_verbose_0(tmp_path, capsys):
    path = tmp_path / "sample.txt"
    status, out, err = run(["-checkpoint", CP, "-length", 30, "-seed", 1, "-output_file", path,
                            "-verbose", 0] + CPU, capsys)
    assert status == 0 and out == "" and err == ""
    assert len(path.read_bytes()) == 30
    status, out, err = run(["-checkpoint", CP, "-length", 30, "-seed", 1, "-output_file", path,
                            "-verbose", 1] + CPU, capsys)
    assert status == 0 and err == f"wrote {path}\n"
    assert out == "Running in CPU mode\nSeeding with uniform probabilities\n"


NUMERIC_FLAGS = ["length", "sample", "temperature", "gpu", "verbose", "seed", "stream",
                 "num_samples"]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("flag", NUMERIC_FLAGS)
def test_non_finite_numeric_flags_are_one_line(capsys, flag, value):
    assert set(NUMERIC_FLAGS) == set(sample_mod.NUMERIC)         # every numeric flag is here
    status, out, err = run(["-checkpoint", CP, "-length", 20] + CPU + [f"-{flag}", value],
                           capsys)
    assert status == 1 and out == ""
    assert err == f"torchrnn-sample: error: -{flag} must be a finite number, got {value}\n"


def test_non_finite_options_in_the_library():
    with pytest.raises(TorchRNNError, match="-seed must be a finite number"):
        sample_mod.sample(checkpoint=str(CP), length=10, seed=float("inf"), gpu=-1)


def _broken_checkpoint(tmp_path, source, breakage):
    model = load_model(source)
    with torch.no_grad():
        breakage(model)
    path = tmp_path / "broken.t7"
    save_checkpoint(str(path), {"model": model, "i": 0}, json_path=None)
    return path


BROKEN = {
    "nan_weight": (CP, lambda m: m.rnns[0].weight.view(-1)[7].fill_(float("nan")),
                   "rnns.0.weight holds NaN"),
    "inf_output_bias": (CP, lambda m: m.linear.bias[3].fill_(float("inf")),
                        "linear.bias holds NaN or infinite"),
    "negative_batchnorm_variance": (
        GOLDEN / "checkpoints" / "lstm_bn_dropout_cp_159.t7",
        lambda m: m.batchnorms[1].running_var[5].fill_(-1.0), "negative running variance"),
}


@pytest.mark.parametrize("argmax", [0, 1])
@pytest.mark.parametrize("case", sorted(BROKEN))
def test_non_finite_model_is_refused_in_one_line(tmp_path, capsys, case, argmax):
    source, breakage, message = BROKEN[case]
    path = _broken_checkpoint(tmp_path, source, breakage)
    status, out, err = run(["-checkpoint", path, "-length", 50, "-seed", 1, "-stream", 1,
                            "-sample", 1 - argmax] + CPU, capsys)
    assert status == 1 and out == ""                     # not one character of nonsense
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"torchrnn-sample: error: {path}: the model's ") and message in err
    # nothing on disk is lost, even with -stream 1 (which writes the file as it goes)
    old = tmp_path / "old.txt"
    old.write_bytes(b"an earlier sample")
    status, _, err = run(["-checkpoint", path, "-length", 50, "-stream", 1, "-output_file", old,
                          "-sample", 1 - argmax] + CPU, capsys)
    assert status == 1 and message in err and old.read_bytes() == b"an earlier sample"


def test_num_samples_separator_lines_split_back_into_the_samples(capsys):
    expected = load_model(CP).sample(200, seed=4, num_samples=4)
    status, out, _ = run(["-checkpoint", CP, "-length", 200, "-seed", 4, "-num_samples", 4,
                          "-stream", 1] + CPU, capsys)
    assert status == 0
    parts = re.split(r"^--- sample \d+ of 4 ---\n", out, flags=re.M)
    assert parts[0] == "" and [p[:-1] for p in parts[1:]] == expected
    assert all(p.endswith("\n") for p in parts[1:])


def test_num_samples_1_keeps_the_original_output(capsys):
    status, out, _ = run(["-checkpoint", CP, "-length", 120, "-seed", 4, "-num_samples", 1]
                         + CPU, capsys)
    assert status == 0 and out == load_model(CP).sample(120, seed=4) + "\n"


def _sample_process(argv, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "torchrnn_py.sample", "-checkpoint",
                             str(CP), "-gpu", "-1"] + [str(a) for a in argv],
                            stderr=subprocess.PIPE, text=True, **kwargs)


def test_sigterm_during_output_file_keeps_the_old_file(tmp_path):
    # a real process (about 2 s): the signal must arrive from outside while it samples
    path = tmp_path / "out.txt"
    path.write_bytes(b"the previous sample")
    process = _sample_process(["-length", 10 ** 9, "-output_file", path],
                              stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(os.listdir(tmp_path)) < 2:                   # the temporary file appears
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    time.sleep(0.3)                                        # sampling is under way
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143
    assert err == "torchrnn-sample: terminated\n"
    assert os.listdir(tmp_path) == ["out.txt"]              # no hidden .tmp left behind
    assert path.read_bytes() == b"the previous sample"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("flags, what", [(["-stream", 1], "the sample"),
                                         (["-verbose", 1], "")])
def test_stream_to_a_full_disk_names_stdout(flags, what, monkeypatch, capsys):
    # stdout on /dev/full: every write fails with ENOSPC, a real full disk
    with open("/dev/full", "wb") as full:
        monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(full, write_through=True))
        status = sample_cli.main([str(a) for a in ["-checkpoint", CP, "-length", 100,
                                                   "-seed", 1] + flags + CPU])
        monkeypatch.undo()
    assert status == 1
    assert capsys.readouterr().err == (f"torchrnn-sample: error: stdout: cannot write"
                                       f"{' ' * bool(what)}{what}: No space left on device\n")


@contextlib.contextmanager
def _file_size_limit(limit):
    """A real failing write without root: RLIMIT_FSIZE (Python ignores SIGXFSZ, so the
    write fails with EFBIG)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


@pytest.mark.parametrize("stream", [0, 1])
def test_output_file_too_large_names_the_file(tmp_path, capsys, stream):
    path = tmp_path / "out.txt"
    path.write_bytes(b"old")
    with _file_size_limit(1000):
        status, out, err = run(["-checkpoint", CP, "-length", 20000, "-stream", stream,
                                "-output_file", path] + CPU, capsys)
    assert status == 1 and out == ""
    assert err == f"torchrnn-sample: error: {path}: cannot write the sample: File too large\n"
    assert os.listdir(tmp_path) == ["out.txt"]
    if stream:                                # -stream 1 writes the file itself, as it goes
        assert 0 < len(path.read_bytes()) <= 1000
    else:                                     # written under a temporary name: old one kept
        assert path.read_bytes() == b"old"


class _FullDisk:
    """A file whose writes fail as on a full disk."""

    def __init__(self, file):
        self.file = file

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def flush(self):
        self.file.flush()


def test_full_disk_while_writing_a_sample_file_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "out.txt"
    path.write_bytes(b"old")
    real = sample_output.atomic_output

    @contextlib.contextmanager
    def on_a_full_disk(*args, **kwargs):
        with real(*args, **kwargs) as file:
            yield _FullDisk(file)

    monkeypatch.setattr(sample_output, "atomic_output", on_a_full_disk)
    with pytest.raises(TorchRNNError) as caught:
        sample_mod.sample(checkpoint=str(CP), length=50, gpu=-1, output_file=str(path))
    assert str(caught.value) == f"{path}: cannot write the sample: No space left on device"
    assert os.listdir(tmp_path) == ["out.txt"] and path.read_bytes() == b"old"


# -- hostile report: long samples, -stream's spool, descriptors, full TMPDIR, odd names, stdout

def test_a_huge_length_streams_to_a_reader_that_stops_early():
    # a real process (about 3 s): `-length 1e12 | head -c 50` must stream and stop quietly;
    # the memory check used to charge 8 bytes per token of -length and refuse it
    process = _sample_process(["-length", 10 ** 12], stdout=subprocess.PIPE)
    head = process.stdout.read(50)
    process.stdout.close()
    _, err = process.communicate(timeout=60)
    assert (len(head), process.returncode, err) == (50, 141, "")


def test_memory_check_charges_the_tokens_kept_not_the_whole_length():
    model = load_model(CP)
    length, memory = 10 ** 12, 2 ** 30                  # 1 GiB: far below 8 bytes per token
    sample_mod.check_streams_fit(model, 1, length, memory, kept="written")
    with pytest.raises(TorchRNNError, match="-num_samples 1 needs about"):
        sample_mod.check_streams_fit(model, 1, length, memory, kept="collected")
    spooled = sample_mod.stream_bytes(model, length, "spooled")     # its index grows
    assert spooled - sample_mod.stream_bytes(model, length, "written") == \
        16 * -(-length // sample_output.FLUSH_EVERY)


def test_stream_keeps_one_spool_segment_per_flush_not_per_token(monkeypatch):
    """-stream 1 with K samples on stdout: sample 1 still comes out token by token, but
    samples 2..K (nobody sees them before the end) go to the spool once per FLUSH_EVERY
    tokens; the spool kept an entry per token per sample (~96 bytes each)."""
    K, length = 5, 20
    segments = {}

    class CountingSpool(sample_output._Spool):
        def append(self, k, data):
            segments[k] = segments.get(k, 0) + 1
            super().append(k, data)

    monkeypatch.setattr(sample_output, "_Spool", CountingSpool)
    monkeypatch.setattr(sample_output, "FLUSH_EVERY", 7)
    out = Recorder()
    sample_mod.sample(out=out, checkpoint=str(CP), length=length, seed=3, gpu=-1,
                      num_samples=K, stream=1)
    assert segments == {k: 3 for k in range(2, K + 1)}         # ceil(20 / 7) chunks each
    expected = load_model(CP).sample(length, seed=3, num_samples=K)
    assert b"".join(out.writes).decode() == "".join(
        f"--- sample {k} of {K} ---\n{text}\n" for k, text in enumerate(expected, start=1))
    first = out.writes[1:1 + length]                            # after the separator line
    assert b"".join(first).decode() == expected[0] and all(len(w) == 1 for w in first)


@pytest.mark.parametrize("stream", [0, 1])
def test_more_sample_files_than_descriptors_is_refused_before_any_is_opened(
        tmp_path, capsys, stream):
    (tmp_path / "o_5.txt").write_bytes(b"precious")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (200, hard))
    try:
        status, out, err = run(["-checkpoint", CP, "-length", 20, "-num_samples", 400,
                                "-stream", stream, "-output_file", tmp_path / "o.txt"] + CPU,
                               capsys)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert (status, out) == (1, "") and err.count("\n") == 1
    assert "-num_samples 400 with -output_file keeps 400 files open" in err
    assert "ulimit -n 200" in err
    assert os.listdir(tmp_path) == ["o_5.txt"]
    assert (tmp_path / "o_5.txt").read_bytes() == b"precious"


def test_a_full_temporary_folder_names_the_spooled_sample(tmp_path, monkeypatch, capsys):
    # samples 2..K wait in TMPDIR; closing the spool used to replace the named error by a
    # bare "No space left on device" (here: the file size limit, a real failing write)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with _file_size_limit(1000):
        status, out, err = run(["-checkpoint", CP, "-length", 5000, "-num_samples", 10,
                                "-seed", 1] + CPU, capsys)
    assert status == 1 and err.count("\n") == 1, err
    assert re.fullmatch(rf"torchrnn-sample: error: temporary file in {re.escape(str(tmp_path))}"
                        rf" for sample \d+: cannot write the sample: File too large\n", err)


def _fifo(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    return tmp_path / "fifo", "a FIFO (named pipe)"


def _directory(tmp_path):
    (tmp_path / "od").mkdir()
    return tmp_path / "od", "a directory"


def _slash(tmp_path):
    (tmp_path / "od").mkdir()
    return f"{tmp_path / 'od'}/", "a name ending in '/'"


def _device_link(tmp_path):
    os.symlink("/dev/null", tmp_path / "null")
    return tmp_path / "null", "a character device"


@pytest.mark.parametrize("make", [_fifo, _directory, _slash, _device_link])
def test_num_samples_files_are_never_named_after_a_device_or_directory(
        make, tmp_path, capsys):
    path, found = make(tmp_path)
    before = sorted(os.listdir(tmp_path))
    status, out, err = run(["-checkpoint", CP, "-length", 10, "-num_samples", 3,
                            "-output_file", path] + CPU, capsys)
    assert (status, out) == (1, "") and err.count("\n") == 1
    assert f"{path}: the files of -num_samples 3" in err and err.endswith(f"found {found}\n")
    assert sorted(os.listdir(tmp_path)) == before
    if (tmp_path / "od").is_dir():
        assert os.listdir(tmp_path / "od") == []                   # not od/_1, od/_2, ...


def test_num_samples_files_beside_dev_null_are_refused(capsys):
    status, _, err = run(["-checkpoint", CP, "-length", 10, "-num_samples", 3,
                          "-output_file", "/dev/null"] + CPU, capsys)
    assert status == 1 and "found a character device" in err
    assert not os.path.exists("/dev/null_1")
    status, _, err = run(["-checkpoint", CP, "-length", 10, "-output_file", "/dev/null"]
                         + CPU, capsys)                             # one sample: written there
    assert status == 0 and err == "wrote /dev/null\n"


def test_library_stdout_that_is_the_checkpoint(tmp_path, monkeypatch):
    """sample(out=...) refuses a stream that is the checkpoint; a call that writes nothing
    to stdout (texts returned, or -output_file) is not refused whatever stdout is."""
    cp = tmp_path / "cp.t7"
    cp.write_bytes(CP.read_bytes())
    with open(cp, "r+b") as same:
        with pytest.raises(TorchRNNError, match="stdout is this checkpoint"):
            sample_mod.sample(out=same, checkpoint=str(cp), length=10, gpu=-1)
        monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(same, write_through=True))
        kept = sample_mod.sample(checkpoint=str(cp), length=10, gpu=-1, seed=1)
        written = sample_mod.sample(out=same, checkpoint=str(cp), length=10, gpu=-1,
                                    output_file=str(tmp_path / "o.txt"))
        monkeypatch.undo()
    assert kept.texts == [load_model(CP).sample(10, seed=1)] and written.paths
    assert cp.read_bytes() == CP.read_bytes()
