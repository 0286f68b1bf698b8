"""torchrnn-charrnn-sample: char-rnn's sample.lua, byte for byte, against the outputs of the
real char-rnn (tests/fixtures/charrnn, README.md there): every sample file, the -verbose
lines, the GPU and OpenCL fallbacks, the new -output_file and -stream, the draws' details
(uniform start, float32 multinomial, first argmax) and bad input as one line."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import FIXTURES, GOLDEN
from torchrnn_py.charrnn.sampling import (choose, first_max_of_log_softmax, log_softmax,
                                          sample_bytes)
from torchrnn_py.charrnn import sample_lua
from torchrnn_py.cli import charrnn_sample as cli
from torchrnn_py.errors import TorchRNNError
from torchrnn_py.model import LanguageModel
from torchrnn_py.rng import TorchGenerator
from torchrnn_py.sampling import NonFiniteScores

CHARRNN = FIXTURES / "charrnn"
NAMES = ["lstm_2x64", "gru_2x64", "rnn_2x64", "lstm_2x48_dropout0.5"]
# fixture case -> sample.lua's flags (README.md, "Commands"); every file used -gpuid -1
# -verbose 0 -length 300
CASES = {
    "default": [],
    "seed7_temp0.5": ["-seed", "7", "-temperature", "0.5"],
    "argmax_ROMEO": ["-sample", "0", "-primetext", "ROMEO:"],
    "prime_The": ["-seed", "123", "-primetext", "The "],
}
QUIET = ["-gpuid", "-1", "-verbose", "0", "-length", "300"]
LSTM = CHARRNN / "lstm_2x64.t7"
TORCHRNN_CHECKPOINT = GOLDEN / "checkpoints" / "lstm_small_cp_159.t7"
PROG = "torchrnn-charrnn-sample"


def run(argv, capsysbinary):
    """main(argv) -> (exit status, stdout bytes, stderr text)."""
    status = cli.main([str(a) for a in argv])
    out, err = capsysbinary.readouterr()
    return status, out, err.decode()


def fixture(name):
    return (CHARRNN / name).read_bytes()


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)   # even on a GPU host
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


# -- the original's output -----------------------------------------------------------------

@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("name", NAMES)
def test_every_fixture_sample_is_byte_identical(name, case, capsysbinary):
    status, out, err = run([CHARRNN / f"{name}.t7"] + QUIET + CASES[case], capsysbinary)
    assert (status, err) == (0, "")
    assert out == fixture(f"{name}.{case}.txt")


@pytest.mark.parametrize("case", ["default", "prime_The"])
def test_the_gpu_steppers_graph_path_gives_the_fixture_bytes(case, capsysbinary, monkeypatch):
    """The TorchStepper a GPU run takes, on its CUDA-graph path (driven on the CPU), told
    how many steps come: char-rnn's bytes, and it ran exactly the steps it was told."""
    from torchrnn_py import sampling
    from torchrnn_py.charrnn import sampling as charrnn_sampling
    made = []

    def graph_stepper(model, num_streams):
        made.append(sampling.TorchStepper(model, num_streams, graphs=True))
        return made[-1]
    monkeypatch.setattr(charrnn_sampling, "choose_stepper", graph_stepper)
    status, out, err = run([LSTM] + QUIET + CASES[case], capsysbinary)
    assert (status, err, out) == (0, "", fixture(f"lstm_2x64.{case}.txt"))
    assert made[0].path == "graph" and made[0].steps_run == made[0].planned == 299


@pytest.mark.parametrize("case, flags", [("verbose", []),
                                         ("verbose_prime_The", ["-primetext", "The "])])
def test_verbose_output_is_identical(case, flags, capsysbinary):
    status, out, err = run([LSTM, "-gpuid", "-1", "-length", "300"] + flags, capsysbinary)
    assert status == 0
    assert out == fixture(f"lstm_2x64.{case}.stdout.txt")
    assert err == fixture(f"lstm_2x64.{case}.stderr.txt").decode() == ""


def test_default_gpuid_without_cuda_prints_the_fallback_lines(no_cuda, capsysbinary):
    status, out, err = run([LSTM, "-length", "300"], capsysbinary)       # -gpuid 0
    assert (status, err) == (0, "")
    assert out == (b"package cunn not found!\t\npackage cutorch not found!\t\n"
                   b"Falling back on CPU mode\t\n" + fixture("lstm_2x64.verbose.stdout.txt"))


def test_fallback_lines_follow_verbose(no_cuda, capsysbinary):
    status, out, _ = run([LSTM, "-length", "300", "-verbose", "0"], capsysbinary)
    assert status == 0 and out == fixture("lstm_2x64.default.txt")


def test_opencl_prints_its_two_lines_at_any_verbose(capsysbinary):
    # sample.lua prints the clnn/cltorch lines with print, the fallback with gprint
    status, out, err = run([LSTM] + QUIET + ["-gpuid", "0", "-opencl", "1"], capsysbinary)
    assert (status, err) == (0, "")
    assert out == (b"package clnn not found!\t\npackage cltorch not found!\t\n"
                   + fixture("lstm_2x64.default.txt"))


def test_cuda_lines_and_device_when_a_gpu_is_there(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    device, lines = sample_lua.choose_backend({"gpuid": 1, "opencl": 0})
    assert device == torch.device("cuda", 1)
    assert [text for text, _ in lines] == [
        "using CUDA on GPU 1...",
        "Make sure that your saved checkpoint was also trained with GPU. If it was trained "
        "with CPU use -gpuid -1 for sampling as well"]
    with pytest.raises(TorchRNNError, match="-gpuid 2: this machine has 2 CUDA device"):
        sample_lua.choose_backend({"gpuid": 2, "opencl": 0})


def test_length_is_a_prefix_and_the_primetext_is_not_counted(capsysbinary):
    status, out, _ = run([LSTM] + QUIET[:4] + ["-length", "10", "-primetext", "The "],
                         capsysbinary)
    assert status == 0 and out == fixture("lstm_2x64.prime_The.txt")[:14] + b"\n"


def test_argmax_ignores_the_temperature(capsysbinary):
    status, out, _ = run([LSTM] + QUIET + CASES["argmax_ROMEO"] + ["-temperature", "0"],
                         capsysbinary)
    assert status == 0 and out == fixture("lstm_2x64.argmax_ROMEO.txt")


def test_subprocess_python_m_torchrnn_py():
    # the one real process (~3 s: a fresh interpreter imports torch); the rest call main()
    result = subprocess.run([sys.executable, "-m", "torchrnn_py", "charrnn-sample", str(LSTM)]
                            + QUIET + CASES["seed7_temp0.5"], capture_output=True, timeout=60)
    assert result.returncode == 0 and result.stderr == b""
    assert result.stdout == fixture("lstm_2x64.seed7_temp0.5.txt")


def test_help_shows_the_argument_and_every_flag(capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["-h"])
    assert caught.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"Usage: {PROG} <model> [options]")
    for flag, default in [("seed", "123"), ("sample", "1"), ("primetext", "''"),
                          ("length", "2000"), ("temperature", "1"), ("gpuid", "0"),
                          ("opencl", "0"), ("verbose", "1")]:
        assert f"-{flag} " in text and f"[{default}]" in text


def test_the_checkpoint_may_come_after_the_flags(capsysbinary):
    status, out, _ = run(QUIET + CASES["prime_The"] + [LSTM], capsysbinary)
    assert status == 0 and out == fixture("lstm_2x64.prime_The.txt")


# -- new flags -----------------------------------------------------------------------------

def test_output_file_gets_the_raw_bytes_and_stdout_the_diagnostics(tmp_path, capsysbinary):
    path = tmp_path / "out.txt"
    status, out, err = run([LSTM, "-gpuid", "-1", "-length", "300", "-primetext", "The ",
                            "-output_file", path], capsysbinary)
    assert status == 0 and err == f"wrote {path}\n"
    expected = fixture("lstm_2x64.verbose_prime_The.stdout.txt")
    sample = fixture("lstm_2x64.prime_The.txt")
    assert path.read_bytes() == sample[:-1]                 # no trailing newline
    assert out == expected[:len(expected) - len(sample)]    # the diagnostic lines only


def test_output_file_quiet_with_verbose_0(tmp_path, capsysbinary):
    path = tmp_path / "out.txt"
    status, out, err = run([LSTM] + QUIET + ["-output_file", path], capsysbinary)
    assert (status, out, err) == (0, b"", "")
    assert path.read_bytes() == fixture("lstm_2x64.default.txt")[:-1]


class Recorder:
    """A binary stream that records each write."""

    def __init__(self):
        self.writes = []

    def write(self, data):
        self.writes.append(bytes(data))
        return len(data)

    def flush(self):
        pass


@pytest.mark.parametrize("stream", [0, 1])
def test_stream_writes_each_byte_as_it_is_made(stream):
    out = Recorder()
    opt = cli.parse_arguments([str(LSTM)] + QUIET + ["-stream", str(stream)])
    sample_lua.run(opt, out)
    assert b"".join(out.writes) == fixture("lstm_2x64.default.txt")
    assert len(out.writes) == (301 if stream else 2)       # 300 bytes + newline, or 1 + 1


# -- the library ---------------------------------------------------------------------------

def test_first_sampled_byte_is_uniform_without_primetext():
    """No primetext: prediction = probabilities 1/V, so the first byte ignores the model
    (which here is sure of 'e'): one uniform draw, or id 1 for the argmax."""
    model = LanguageModel({i + 1: chr(97 + i) for i in range(5)}, rnn_size=8,
                          wordvec_size=4, num_layers=1, generator=TorchGenerator(1)).double()
    with torch.no_grad():
        model.linear.bias[:] = torch.tensor([0, 0, 0, 0, 50.0])
    firsts = set()
    for seed in range(8):
        u = TorchGenerator(seed).uniform()
        first = sample_bytes(model, 3, generator=TorchGenerator(seed))[:1]
        index = int(np.floor(u * 5))
        assert first == b"abcde"[index:index + 1]
        firsts.add(first)
    assert len(firsts) > 2                                          # not the model's 'e'
    assert sample_bytes(model, 3, sample=False) == b"aee"          # argmax: id 1, then 'e'


def test_log_softmax_is_torch7s_formula():
    y = np.array([3.0, -1.5, 0.25, 1e-3, 2.0])
    top = 3.0
    total = 0.0
    for value in y:                                  # in order, as Torch7 sums
        total += np.exp(value - top)
    assert np.array_equal(log_softmax(y), y - (top + np.log(total)))
    with pytest.raises(NonFiniteScores):
        log_softmax(np.array([1.0, np.nan]))
    with pytest.raises(NonFiniteScores):
        log_softmax(np.array([1.0, np.inf]))


def test_argmax_takes_the_first_maximum():
    assert choose(np.array([0.1, 0.7, 0.7]), False, 1.0, None) == 1
    assert choose(np.full(4, 0.25), False, 1.0, None) == 0


def _reference_draw(prediction, u, cast):
    """sample.lua's draw with uniform u: exp, normalise in double, maybe cast to float32,
    cumulative sum in double / total, last = 1, first index with cum >= u."""
    probs = np.exp(prediction)
    probs = probs / probs.sum()
    if cast:
        probs = probs.astype(np.float32)
    cum = np.cumsum(probs.astype(np.float64))
    cum /= cum[-1]
    cum[-1] = 1.0
    return int(np.searchsorted(cum, u, side="left"))


def test_the_draw_casts_the_probabilities_to_float32():
    """Find a seed and a distribution where float32 and float64 probabilities pick different
    bytes for the seed's first uniform; sample.lua (torch.multinomial(probs:float())) takes
    the float32 answer."""
    for seed in range(200):
        u = TorchGenerator(seed).uniform()
        ulp = float(np.spacing(np.float32(u)))
        for fraction in (0.1, 0.2, 0.3, 0.4):
            p = u - fraction * ulp
            prediction = np.log(np.array([p, 1.0 - p]))
            if _reference_draw(prediction, u, True) != _reference_draw(prediction, u, False):
                break
        else:
            continue
        break
    else:
        pytest.fail("no distribution found where the float32 cast matters")
    assert choose(prediction, True, 1.0, TorchGenerator(seed)) == \
        _reference_draw(prediction, u, True)


def test_library_sample_bytes_matches_the_command(capsysbinary):
    from torchrnn_py.charrnn.checkpoint import load_charrnn
    model = load_charrnn(str(LSTM)).model
    text = sample_bytes(model, 300, b"The ", generator=TorchGenerator(123))
    assert text + b"\n" == fixture("lstm_2x64.prime_The.txt")
    assert sample_bytes(model, 300) + b"\n" == fixture("lstm_2x64.default.txt")  # seed 123


def test_non_finite_scores_are_refused():
    model = LanguageModel({1: "a", 2: "b"}, rnn_size=4, wordvec_size=2, num_layers=1,
                          generator=TorchGenerator(1)).double()
    with torch.no_grad():
        model.linear.bias[0] = float("nan")
    with pytest.raises(NonFiniteScores, match="NaN or infinite"):
        sample_bytes(model, 5)


# -- bad input: one line on stderr, nothing on stdout --------------------------------------

@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "model.fifo"
    os.mkfifo(path)
    return path


BAD = {
    "byte not in the vocabulary": ([LSTM, "-primetext", "X-ray"],
                                   f"-primetext: byte 0x58 ('X') at offset 0 is not in the "
                                   f"vocabulary of {LSTM}"),
    "non-ASCII byte": ([LSTM, "-primetext", "Th\u00e9"],
                       "-primetext: byte 0xC3 (non-printing) at offset 2 is not in the "
                       "vocabulary"),
    "temperature 0": ([LSTM, "-temperature", "0"],
                      "-temperature must be a finite number above 0, got 0"),
    "temperature negative": ([LSTM, "-temperature", "-1"], "-temperature must be a finite"),
    "temperature nan": ([LSTM, "-temperature", "nan"], "-temperature must be a finite number"),
    "temperature inf": ([LSTM, "-temperature", "inf"], "-temperature must be a finite number"),
    "length 0": ([LSTM, "-length", "0"], "-length must be a positive integer, got 0"),
    "length negative": ([LSTM, "-length", "-3"], "-length must be a positive integer"),
    "length fractional": ([LSTM, "-length", "2.5"], "-length must be a positive integer"),
    "seed fractional": ([LSTM, "-seed", "1.5"], "-seed must be an integer, got 1.5"),
    "missing checkpoint": (["nothere.t7"], "nothere.t7: checkpoint not found"),
    "directory": ([CHARRNN], f"{CHARRNN}: expected a checkpoint, found a directory"),
    "device": (["/dev/null"], "found a character device"),
    "not a t7 file": ([CHARRNN / "README.md"], "this is not a Torch7 file"),
    "torch-rnn checkpoint": ([TORCHRNN_CHECKPOINT],
                             f"{TORCHRNN_CHECKPOINT}: a torch-rnn checkpoint, not a "
                             f"char-rnn one; torch-rnn's commands read it as it is "
                             f"(sample it with torchrnn-sample -checkpoint "
                             f"{TORCHRNN_CHECKPOINT})"),
    "no argument": (["-length", "5"], "missing argument: the model checkpoint"),
    "two arguments": ([LSTM, LSTM], "unexpected argument"),
    "unknown flag": ([LSTM, "-primetxt", "The"], "unknown option -primetxt (did you mean "
                                                 "-primetext?"),
    "output file is the model": ([LSTM, "-output_file", LSTM], "would overwrite the model"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_on_stderr(case, capsysbinary):
    argv, message = BAD[case]
    before = LSTM.stat().st_mtime_ns, LSTM.stat().st_size
    status, out, err = run(argv + ["-gpuid", "-1"], capsysbinary)
    assert status in (1, 2) and out == b""
    assert err.count("\n") == 1 and err.startswith(f"{PROG}: error: ") and message in err
    assert (LSTM.stat().st_mtime_ns, LSTM.stat().st_size) == before


def test_a_fifo_is_refused_without_blocking(fifo, capsysbinary):
    status, out, err = run([fifo], capsysbinary)
    assert status == 1 and out == b"" and "FIFO" in err and err.count("\n") == 1


def test_one_row_multinomial_is_the_batched_one():
    """rng.TorchGenerator.multinomial's one-row path (used per byte here) draws what the
    batched path draws for that row, float32 and float64 input alike."""
    rows = np.random.default_rng(0).random((300, 62)) ** 4
    rows[::7, 5:] = 0.0                                      # zeros and early cut-offs
    for dtype in (np.float32, np.float64):
        one, batched = TorchGenerator(11), TorchGenerator(11)
        got = [one.multinomial(row.astype(dtype), validate=False) for row in rows]
        want = [int(batched.multinomial(row.astype(dtype)[None])[0]) for row in rows]
        assert got == want
    with pytest.raises(ValueError, match="invalid multinomial distribution"):
        TorchGenerator(1).multinomial(np.zeros(3))


def test_argmax_shortcut_is_the_log_softmax_argmax():
    """-sample 0 skips the LogSoftMax unless an earlier score is within rounding of the
    maximum; scores that tie only after ``y - logsum`` still give the first of them."""
    rng = np.random.default_rng(1)
    for _ in range(200):
        y = rng.normal(size=62) * 4
        assert first_max_of_log_softmax(y) == int(log_softmax(y).argmax())
    y = np.zeros(62)
    y[3] = 1e-16                        # y - logsum rounds both to -log(62): a tie, first wins
    assert int(y.argmax()) == 3 and int(log_softmax(y).argmax()) == 0
    assert first_max_of_log_softmax(y) == 0
    with pytest.raises(NonFiniteScores):
        first_max_of_log_softmax(np.array([0.0, np.nan]))


def test_a_torch7_file_that_is_no_checkpoint_is_one_line(tmp_path, capsysbinary):
    from torchrnn_py.t7 import write_t7
    path = tmp_path / "table.t7"
    write_t7(path, {"protos": 1})
    status, out, err = run([path, "-gpuid", "-1"], capsysbinary)
    assert (status, out) == (1, b"")
    assert err == (f"{PROG}: error: {path}: not a char-rnn checkpoint: expected a table with "
                   f"protos.rnn and vocab, as char-rnn's train.lua saves\n")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("verbose, what", [("0", " the sample"), ("1", "")])
def test_stdout_on_a_full_disk_is_one_line(verbose, what, monkeypatch, capsys):
    import io
    with open("/dev/full", "wb") as full:       # every write fails with ENOSPC
        monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(full, write_through=True))
        status = cli.main([str(LSTM), "-gpuid", "-1", "-length", "50", "-verbose", verbose])
        monkeypatch.undo()
    assert status == 1
    assert capsys.readouterr().err == (f"{PROG}: error: stdout: cannot write{what}: "
                                       f"No space left on device\n")


def test_a_flag_value_that_looks_like_help_is_a_value(capsysbinary):
    """``-primetext -h`` primes with "-h", as torch.CmdLine reads it (not the help)."""
    status, out, err = run([CHARRNN / "rnn_2x64.t7", "-gpuid", "-1", "-length", "3",
                            "-verbose", "0", "-primetext", "-h"], capsysbinary)
    assert status == 0, err
    assert out.startswith(b"-h") and len(out) == 2 + 3 + 1


def test_closed_stdout_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdout", None)                 # started as `cmd >&-`
    assert cli.main([str(LSTM), "-gpuid", "-1", "-length", "5"]) == 1
    assert capsys.readouterr().err == ("torchrnn-charrnn-sample: error: stdout is closed; "
                                       "give the command somewhere to write\n")
