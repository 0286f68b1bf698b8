"""torchrnn-plot: loss curves from real checkpoint JSONs and CSV logs, spectrograms, errors."""
import builtins
import json

import numpy as np
import pytest
from scipy.io import wavfile

from conftest import GOLDEN, LEGACY
from torchrnn_py.cli import plot as plot_cli
from torchrnn_py import LanguageModel, plot, save_checkpoint
from torchrnn_py.audio import encode_audio
from torchrnn_py.preprocess import preprocess

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    data = path.read_bytes()
    return data.startswith(PNG_MAGIC) and len(data) > 5000


def test_plot_real_late_checkpoint_json(tmp_path, capsys):
    out = tmp_path / "curve.png"
    assert plot_cli.main([str(LEGACY / "placenames_checkpoint_8450.json"), "-o", str(out)]) == 0
    assert _is_png(out)
    assert "wrote" in capsys.readouterr().out


def test_history_of_real_json_lines_up_iterations():
    its, train, val_it, val = plot.read_history(str(LEGACY / "placenames_checkpoint_8450.json"))
    raw = json.loads((LEGACY / "placenames_checkpoint_8450.json").read_text())
    assert len(train) == len(raw["train_loss_history"]) == 8450
    assert its[0] == 1 and its[-1] == raw["i"]
    assert list(val_it) == raw["val_loss_history_it"]
    assert np.allclose(val, raw["val_loss_history"])


def test_empty_lists_written_as_braces_are_accepted(tmp_path):
    # lua-cjson writes an empty list as {}; a checkpoint before any validation has them
    data = json.loads((GOLDEN / "checkpoints" / "lstm_small_cp_100.json").read_text())
    data["val_loss_history"] = {}
    data["val_loss_history_it"] = {}
    path = tmp_path / "cp.json"
    path.write_text(json.dumps(data))
    its, train, val_it, val = plot.read_history(str(path))
    assert len(train) == 100 and val.size == 0 and val_it.size == 0


def test_summarise_keeps_mean_min_max_of_each_bucket():
    rng = np.random.default_rng(0)
    y = rng.normal(size=100_003)
    x = np.arange(1, y.size + 1, dtype=float)
    xs, mean, low, high = plot.summarise(x, y, max_points=1000)
    assert len(mean) <= 1001
    size = int(np.ceil(y.size / 1000))
    assert np.isclose(mean[0], y[:size].mean())
    assert low[3] == y[3 * size:4 * size].min() and high[3] == y[3 * size:4 * size].max()
    assert low.min() == y.min() and high.max() == y.max()      # nothing lost at the ends
    short = plot.summarise(x[:10], y[:10])
    assert np.array_equal(short[1], y[:10])


def test_hundreds_of_thousands_of_points(tmp_path):
    data = json.loads((LEGACY / "placenames_checkpoint_8450.json").read_text())
    data["train_loss_history"] = data["train_loss_history"] * 40       # 338,000 points
    data["i"] = len(data["train_loss_history"])
    path = tmp_path / "late.json"
    path.write_text(json.dumps(data))
    out = tmp_path / "late.png"
    plot.plot_losses([str(path)], str(out))
    assert _is_png(out)


def test_csv_log_and_several_inputs(tmp_path):
    csv_path = tmp_path / "run.csv"
    rows = ["i,epoch,loss,learning_rate,seconds,val_loss"]
    for i in range(1, 51):
        val = f"{3.0 - i / 50:.3f}" if i % 10 == 0 else ""
        rows.append(f"{i},{1 + i / 50},{4.0 - i / 25},0.002,{i * 0.1:.3f},{val}")
    csv_path.write_text("\n".join(rows) + "\n")
    its, train, val_it, val = plot.read_history(str(csv_path))
    assert len(train) == 50 and list(val_it) == [10, 20, 30, 40, 50]
    out = tmp_path / "both.png"
    assert plot_cli.main([str(csv_path), str(GOLDEN / "checkpoints" / "lstm_small_cp_159.json"),
                      "-o", str(out)]) == 0
    assert _is_png(out)


def test_spectrograms_side_by_side(tmp_path):
    rate = 8000
    t = np.arange(rate) / rate
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    wavfile.write(a, rate, (np.sin(2 * np.pi * 440 * t) * 20000).astype(np.int16))
    wavfile.write(b, rate, (np.sin(2 * np.pi * 1200 * t) * 100 + 128).astype(np.uint8))
    out = tmp_path / "spec.png"
    assert plot_cli.main(["--spectrogram", str(a), str(b), "-o", str(out)]) == 0
    assert _is_png(out)


def _one_error_line(capsys, status, needle):
    err = capsys.readouterr().err
    assert status != 0
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert needle in err


def test_missing_matplotlib_is_one_clear_line(tmp_path, capsys, monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    status = plot_cli.main([str(LEGACY / "placenames_checkpoint_8450.json"),
                        "-o", str(tmp_path / "x.png")])
    # a command that works in a clone and for an installed package alike (the [plot] extra
    # of an unpublished package does not install from a plain `pip install`)
    err = capsys.readouterr().err
    assert status != 0 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.strip().endswith(": pip install matplotlib")           # one command, no 'or'
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("content, needle", [
    (None, "not found"),
    (b"{not json", "not a valid checkpoint JSON"),
    (b'{"train_loss_history": [], "val_loss_history": []}', "no loss history"),
    (b'{"train_loss_history": ["a", "b"]}', "not lists of numbers"),
])
def test_bad_inputs(tmp_path, capsys, content, needle):
    path = tmp_path / "cp.json"
    if content is not None:
        path.write_bytes(content)
    out = tmp_path / "out.png"
    out.write_bytes(b"keep me")
    status = plot_cli.main([str(path), "-o", str(out)])
    _one_error_line(capsys, status, needle)
    assert out.read_bytes() == b"keep me"


def test_output_never_overwrites_an_input(tmp_path, capsys):
    path = tmp_path / "cp.json"
    path.write_bytes((LEGACY / "placenames_checkpoint_8450.json").read_bytes())
    status = plot_cli.main([str(path), "-o", str(path)])
    _one_error_line(capsys, status, "overwrite")
    assert path.read_bytes() == (LEGACY / "placenames_checkpoint_8450.json").read_bytes()


def test_library_calls_never_overwrite_an_input_either(tmp_path):
    """plot_losses / plot_spectrograms make the command's checks themselves."""
    path = tmp_path / "cp.json"
    original = (LEGACY / "placenames_checkpoint_8450.json").read_bytes()
    path.write_bytes(original)
    with pytest.raises(plot.TorchRNNError, match="overwrite"):
        plot.plot_losses([str(path)], str(path))
    wav = tmp_path / "a.wav"
    wavfile.write(wav, 8000, (np.arange(8000) % 200).astype(np.uint8))
    with pytest.raises(plot.TorchRNNError, match="overwrite"):
        plot.plot_spectrograms([str(wav)], str(wav))
    assert path.read_bytes() == original and wav.stat().st_size > 8000
    for bad in (float("nan"), float("inf"), 0.0, -1.0):
        with pytest.raises(plot.TorchRNNError, match="max_seconds must be a finite number"):
            plot.plot_spectrograms([str(wav)], str(tmp_path / "s.png"), max_seconds=bad)
    with pytest.raises(plot.TorchRNNError, match="2 labels for 1 WAV files"):
        plot.plot_spectrograms([str(wav)], str(tmp_path / "s.png"), labels=["a", "b"])
    with pytest.raises(plot.TorchRNNError, match="no input files"):
        plot.plot_losses([], str(tmp_path / "c.png"))
    assert not (tmp_path / "s.png").exists() and not (tmp_path / "c.png").exists()


def _tick_texts(fig):
    fig.canvas.draw()
    ax = fig.axes[0]
    labels = ax.get_yticklabels() + ax.get_yticklabels(minor=True)
    return [t.get_text() for t in labels if t.get_text()]


def test_log_y_ticks_are_plain_decimals():
    # placenames' losses span 1.2-4.5: less than a decade, so matplotlib's own labels are
    # minor ticks written like 4 x 10^0
    fig = plot.loss_figure([str(LEGACY / "placenames_checkpoint_8450.json")], log_y=True)
    texts = _tick_texts(fig)
    assert fig.axes[0].get_yscale() == "log"
    assert len(texts) >= 3
    for text in texts:
        assert "10^" not in text and "times" not in text and "\\" not in text, text
        float(text)                                     # a plain decimal


def _json_with_input_json(tmp_path, vocab_json):
    data = json.loads((GOLDEN / "checkpoints" / "lstm_small_cp_100.json").read_text())
    data["opt"]["input_json"] = str(vocab_json)
    path = tmp_path / "run_100.json"
    path.write_text(json.dumps(data))
    return path


def _tone_wav(path, seconds=0.5, rate=8000):
    t = np.arange(int(seconds * rate)) / rate
    wavfile.write(path, rate, (np.sin(2 * np.pi * 330 * t) * 12000).astype(np.int16))


def test_audio_run_axis_is_per_sample(tmp_path):
    # the voice recipe: WAV -> BinToUTF8 text -> preprocess; the JSON's opt.input_json names
    # the vocabulary
    _tone_wav(tmp_path / "tone.wav")
    encode_audio(str(tmp_path / "tone.wav"), str(tmp_path / "voice.txt"), rate=8000,
                 table_path=str(tmp_path / "voice.bcl"))
    preprocess(str(tmp_path / "voice.txt"), str(tmp_path / "voice.h5"),
               str(tmp_path / "voice.json"))
    run = _json_with_input_json(tmp_path, tmp_path / "voice.json")
    fig = plot.loss_figure([str(run)])
    assert fig.axes[0].get_ylabel() == "loss (cross-entropy, nats per sample)"
    assert plot.loss_figure([str(run)], unit="character").axes[0].get_ylabel().endswith(
        "per character)")


def test_byte_path_checkpoint_beside_its_json_is_per_sample(tmp_path):
    # preprocess --encoding bytes; no input_json on this machine: the .t7 beside the JSON
    raw = tmp_path / "voice.raw"
    raw.write_bytes(bytes(range(256)) * 4)
    result = preprocess(str(raw), str(tmp_path / "v.h5"), str(tmp_path / "v.json"),
                        encoding="bytes")
    model = LanguageModel(result["vocab"] if isinstance(result, dict) else result.vocab,
                          wordvec_size=4, rnn_size=8, num_layers=1)
    save_checkpoint(str(tmp_path / "cv_10.t7"), {"model": model, "i": 10,
                                                  "train_loss_history": [5.5] * 10})
    assert plot.data_unit([str(tmp_path / "cv_10.json")]) == "sample"


def test_text_runs_and_unknown_vocabularies_are_per_character(tmp_path):
    # placenames: its input_json is not here, its .t7 (ASCII place names) is beside it
    assert plot.data_unit([str(LEGACY / "placenames_checkpoint_8450.json")]) == "character"
    csv_path = tmp_path / "run.csv"
    csv_path.write_text("i,epoch,loss,learning_rate,seconds,val_loss\n1,1,5.5,0.002,0.1,\n")
    assert plot.data_unit([str(csv_path)]) == "character"
    fig = plot.loss_figure([str(csv_path)], unit="sample")    # what --unit sample does
    assert fig.axes[0].get_ylabel().endswith("nats per sample)")


def test_unit_flag_reaches_the_picture(tmp_path, monkeypatch):
    seen = {}
    real = plot.loss_figure

    def spy(paths, **kwargs):
        fig = real(paths, **kwargs)
        seen["label"] = fig.axes[0].get_ylabel()
        return fig

    monkeypatch.setattr(plot, "loss_figure", spy)
    out = tmp_path / "c.png"
    assert plot_cli.main([str(GOLDEN / "checkpoints" / "lstm_small_cp_100.json"), "--unit",
                      "sample", "-o", str(out)]) == 0
    assert seen["label"].endswith("per sample)") and _is_png(out)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-2", "abc", "NaN"])
def test_seconds_must_be_a_finite_positive_number(tmp_path, capsys, value):
    out = tmp_path / "spec.png"
    wav = tmp_path / "a.wav"
    _tone_wav(wav)
    status = plot_cli.main(["--spectrogram", str(wav), "--seconds", value, "-o", str(out)])
    _one_error_line(capsys, status, "--seconds")
    assert not out.exists()


def test_huge_seconds_draw_the_whole_file(tmp_path):
    wav = tmp_path / "a.wav"
    _tone_wav(wav)
    out = tmp_path / "spec.png"
    assert plot_cli.main(["--spectrogram", str(wav), "--seconds", "1e308", "-o", str(out)]) == 0
    assert _is_png(out)
