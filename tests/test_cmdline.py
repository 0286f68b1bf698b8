"""The shared command-line plumbing: the closest flag suggested for a typo, NaN and infinity
refused, SIGTERM cleaned up like Ctrl-C, and the 'wrote PATH' line."""
import os
import signal
import time

import pytest

from conftest import GOLDEN
from torchrnn_py.cli import evaluate as evaluate_cli, sample as sample_cli, train as train_cli
from torchrnn_py import cmdline, evaluate, sample, train
from torchrnn_py.errors import TorchRNNError

CP = GOLDEN / "checkpoints" / "lstm_small_cp_159.t7"


def test_unknown_train_option_suggests_the_closest(capsys):
    assert train_cli.main(["-rnnsize", "64"]) == cmdline.USAGE_ERROR
    out, err = capsys.readouterr()
    assert out == ""
    assert err == ("torchrnn-train: error: unknown option -rnnsize (did you mean -rnn_size? "
                   "see torchrnn-train -h)\n")


@pytest.mark.parametrize("module, typo, meant", [
    (sample_cli, "-temprature", "-temperature"),
    (sample_cli, "--numsamples", "--num_samples"),
    (evaluate_cli, "-chekpoint", "-checkpoint"),
])
def test_unknown_option_suggestion_in_sample_and_eval(capsys, module, typo, meant):
    assert module.main([typo, "1"]) == cmdline.USAGE_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"unknown option {typo} (did you mean {meant}? see {module.PROG} -h)" in err


def test_unknown_option_far_from_every_flag_has_no_guess():
    with pytest.raises(cmdline.UsageError) as caught:
        cmdline.parse_torch_options(sample.OPTIONS, ["-zzzzqqqq", "1"], "torchrnn-sample")
    assert str(caught.value) == "unknown option -zzzzqqqq (see torchrnn-sample -h)"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_require_finite_refuses_nan_and_infinity(value):
    opt = cmdline.parse_torch_options(sample.OPTIONS, ["-length", value], "torchrnn-sample")
    with pytest.raises(TorchRNNError, match=f"-length must be a finite number, got {value}"):
        cmdline.require_finite(opt, ["length"])
    cmdline.require_finite(opt, ["temperature", "checkpoint"])   # the others are fine


@pytest.mark.parametrize("flag", ["gpu", "batch_size", "seq_length"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_eval_refuses_non_finite_numbers_in_one_line(capsys, flag, value):
    status = evaluate_cli.main(["-checkpoint", str(CP), f"-{flag}", value])
    out, err = capsys.readouterr()
    assert status == 1 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"-{flag} must be" in err and value in err


def test_sigterm_runs_the_clean_up_of_ctrl_c(capsys):
    cleaned = []

    def body(argv):
        with cmdline.sigterm_as_interrupt():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(100):                  # the handler runs within a moment
                    time.sleep(0.01)
                raise AssertionError("SIGTERM did not interrupt")
            finally:
                cleaned.append(True)

    previous = signal.getsignal(signal.SIGTERM)
    assert cmdline.run_main("prog", body, []) == 143
    assert cleaned == [True]
    assert capsys.readouterr().err == "prog: terminated\n"
    assert signal.getsignal(signal.SIGTERM) is previous        # handler restored


def test_report_written_is_one_line_on_stderr(capsys):
    cmdline.report_written("cv/checkpoint_100.t7")
    assert capsys.readouterr() == ("", "wrote cv/checkpoint_100.t7\n")
