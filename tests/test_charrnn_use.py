"""char-rnn checkpoints through torch-rnn's own commands and functions: load_model in a
notebook, torchrnn-sample, torchrnn-eval on a dataset preprocessed with ``--encoding bytes``,
torchrnn-train -init_from. The expected numbers come from char-rnn's forward dumps and
sample.lua's outputs (tests/fixtures/charrnn), not from this package."""
import contextlib
import functools
import io
import re

import h5py
import numpy as np
import pytest
import torch

from torchrnn_py import load_model
from torchrnn_py.cli import evaluate as eval_cli
from torchrnn_py.cli import preprocess as preprocess_cli
from torchrnn_py.cli import sample as sample_cli
from torchrnn_py.cli import train as train_cli

from conftest import FIXTURES

CHARRNN = FIXTURES / "charrnn"


def _run(main, argv):
    """rc, stdout (str: its bytes as UTF-8) and stderr of ``main(argv)``."""
    raw, err = io.BytesIO(), io.StringIO()
    out = io.TextIOWrapper(raw, encoding="utf-8", write_through=True)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    out.flush()
    return rc, raw.getvalue().decode("utf-8"), err.getvalue()


@functools.lru_cache(maxsize=None)
def _dump(name):
    with h5py.File(CHARRNN / f"{name}.forward.h5", "r") as f:
        return {key: f[key][()] for key in f}


def _dump_loss(name, text):
    """char-rnn's mean loss over bytes 1..200 of ``text`` (its dump's log-probabilities)."""
    dump = _dump(name)
    ids = [bytes(dump["vocab"]).index(b) for b in text]
    return -float(np.mean([dump["logprobs"][t, ids[t + 1]] for t in range(200)]))


@pytest.fixture(scope="module")
def byte_dataset(tmp_path_factory):
    """The dumps' first 201 bytes as each of train, val and test (``--encoding bytes``)."""
    tmp = tmp_path_factory.mktemp("bytes")
    corpus = FIXTURES.parent.parent / "torchrnn_py" / "corpus" / "tiny-shakespeare.txt"
    text = corpus.read_bytes()[:201]     # the training input of tests/fixtures/charrnn
    assert text[:200] == bytes(_dump("lstm_2x64")["text"])
    (tmp / "in.txt").write_bytes(text * 3)
    rc, _, err = _run(preprocess_cli.main, [
        "--input_txt", str(tmp / "in.txt"), "--output_h5", str(tmp / "d.h5"),
        "--output_json", str(tmp / "d.json"), "--encoding", "bytes",
        "--val_frac", "0.3333334", "--test_frac", "0.3333334", "--quiet"])
    assert rc == 0, err
    return tmp, text


def test_load_model_opens_a_charrnn_checkpoint_as_stored():
    model = load_model(str(CHARRNN / "gru_2x64.t7"))
    assert model.model_type == "gru" and not model.training
    assert model.linear.weight.dtype == torch.float64       # char-rnn computes in double
    dump = _dump("gru_2x64")
    with torch.no_grad():
        scores = model(torch.from_numpy(dump["input"][:50]).view(1, -1))[0]
    assert torch.allclose(torch.log_softmax(scores, -1), torch.from_numpy(dump["logprobs"][:50]),
                          rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", ["lstm_2x64", "rnn_2x64", "gru_2x64"])
def test_torchrnn_sample_argmax_is_charrnns(name):
    """torch-rnn's flags on a char-rnn file: the most likely continuation is the one char-rnn's
    sample.lua printed (its -sample 0 -primetext "ROMEO:" output, less the final newline)."""
    expected = (CHARRNN / f"{name}.argmax_ROMEO.txt").read_bytes()[:-1].decode("ascii")
    rc, out, err = _run(sample_cli.main, [
        "-checkpoint", str(CHARRNN / f"{name}.t7"), "-gpu", "-1", "-sample", "0",
        "-start_text", "ROMEO:", "-length", str(len(expected))])
    assert rc == 0, err
    assert out == expected + "\n"


def test_torchrnn_eval_scores_a_byte_dataset_as_charrnn(byte_dataset):
    tmp, text = byte_dataset
    rc, out, err = _run(eval_cli.main, [
        "-checkpoint", str(CHARRNN / "lstm_2x64.t7"), "-input_h5", str(tmp / "d.h5"),
        "-input_json", str(tmp / "d.json"), "-split", "val", "-batch_size", "1",
        "-seq_length", "200", "-gpu", "-1"])
    assert rc == 0, err
    loss = float(re.search(r"val loss = ([0-9.]+)", out).group(1))
    assert abs(loss - _dump_loss("lstm_2x64", text)) < 2e-6
    assert "mapped to the model's vocabulary of 62 tokens" in err


def test_torchrnn_train_continues_a_charrnn_checkpoint(byte_dataset):
    """-init_from a char-rnn file: the first loss is the model's loss on the first batch (as
    char-rnn computes it), then training moves it; the checkpoint keeps the 62-byte vocab."""
    tmp, text = byte_dataset
    rc, out, err = _run(train_cli.main, [
        "-input_h5", str(tmp / "d.h5"), "-input_json", str(tmp / "d.json"),
        "-init_from", str(CHARRNN / "rnn_2x64.t7"), "-batch_size", "1", "-seq_length", "200",
        "-max_epochs", "3", "-gpu", "-1", "-checkpoint_name", str(tmp / "cont"),
        "-print_every", "1", "-checkpoint_every", "3"])
    assert rc == 0, err
    found = [float(v) for v in re.findall(r"loss = ([0-9.]+)", out)]
    assert abs(found[0] - _dump_loss("rnn_2x64", text)) < 2e-6
    assert found[-1] < found[0]
    model = load_model(str(tmp / "cont_3.t7"))
    assert model.model_type == "rnn" and model.vocab == load_model(
        str(CHARRNN / "rnn_2x64.t7")).vocab
