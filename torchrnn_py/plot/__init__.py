"""torchrnn-plot: pictures of a run (loss curves) and of audio (spectrograms).

``torchrnn-plot cv/checkpoint_N.json -o curve.png`` draws the training loss of every
iteration and the validation loss at each checkpoint against the iteration, from a
checkpoint's JSON (late ones hold hundreds of thousands of points) or from train's
``-log_csv`` file; several inputs are drawn on one plot. ``--spectrogram a.wav b.wav``
draws spectrograms side by side instead (training audio beside generated audio).

The loss axis says what one step of the data is: "per sample" for a model of bytes (8-bit
audio, as BinToUTF8 text or ``preprocess --encoding bytes``, found from the checkpoint's
vocabulary), "per character" otherwise; ``--unit`` says it outright (a CSV log names no
vocabulary). matplotlib is optional (``pip install matplotlib``); without it the command says
so in one line.
"""
import csv
import math
import os

import numpy as np

from ..bintoutf8 import BCL_ALPHABET, OFFSET_BASE
from ..checkpoint import load_model, read_checkpoint_json
from ..errors import TorchRNNError
from ..fileio import atomic_path, check_distinct, check_input_file
from ..vocab import read_vocab

PROG = "torchrnn-plot"
MAX_DRAWN = 4000      # points per curve actually drawn; longer histories are summarised
UNITS = ("auto", "character", "sample", "byte", "token")
MATPLOTLIB_HINT = "pip install matplotlib"   # works for a clone and an installed package
_BINTOUTF8_CHARS = frozenset(map(chr, BCL_ALPHABET)) | frozenset(
    chr(OFFSET_BASE + b) for b in range(256))


def _pyplot():
    """matplotlib.pyplot on the file-only Agg backend, or a clear error."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise TorchRNNError(f"plotting needs matplotlib, which is not installed: "
                            f"{MATPLOTLIB_HINT}") from None
    return plt


def read_history(path):
    """(iterations, train losses, val iterations, val losses) from a checkpoint JSON or a
    -log_csv file, as numpy arrays."""
    check_input_file(path, "history file")
    if path.endswith(".csv"):
        return _read_csv(path)
    data = read_checkpoint_json(path)
    try:
        train = np.asarray(data.get("train_loss_history", []), dtype=np.float64)
        val = np.asarray(data.get("val_loss_history", []), dtype=np.float64)
        val_it = np.asarray(data.get("val_loss_history_it", []), dtype=np.float64)
    except (TypeError, ValueError):
        raise TorchRNNError(f"{path}: the loss histories are not lists of numbers") from None
    if train.ndim != 1 or val.ndim != 1 or val_it.shape != val.shape:
        raise TorchRNNError(f"{path}: malformed loss histories")
    if train.size == 0 and val.size == 0:
        raise TorchRNNError(f"{path}: no loss history to plot")
    # train_loss_history holds iterations start+1 .. i; i is the last one.
    last = int(data.get("i", train.size)) if isinstance(data.get("i"), (int, float)) else train.size
    iterations = np.arange(last - train.size + 1, last + 1, dtype=np.float64)
    return iterations, train, val_it, val


def _read_csv(path):
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        its = np.array([float(r["i"]) for r in rows])
        losses = np.array([float(r["loss"]) for r in rows])
        val_rows = [r for r in rows if r.get("val_loss")]
        val_it = np.array([float(r["i"]) for r in val_rows])
        val = np.array([float(r["val_loss"]) for r in val_rows])
    except (KeyError, ValueError, TypeError, UnicodeDecodeError, csv.Error) as err:
        raise TorchRNNError(f"{path}: not a torchrnn-train -log_csv file ({err})") from None
    if its.size == 0:
        raise TorchRNNError(f"{path}: no rows to plot")
    return its, losses, val_it, val


def is_byte_vocab(vocab):
    """True for a vocabulary of bytes: ``preprocess --encoding bytes``, or BinToUTF8 text
    (every token one BinToUTF8 character, at least one of them beyond ASCII)."""
    if vocab.is_bytes:
        return True
    tokens = vocab.tokens
    return all(t in _BINTOUTF8_CHARS for t in tokens) and any(ord(t) > 0x7E for t in tokens)


def _history_vocab(path):
    """The vocabulary of the run a checkpoint JSON records: its ``opt.input_json``, else
    the ``.t7`` beside it; None when neither can be read (a CSV log names none)."""
    if not path.endswith(".json"):
        return None
    opt = read_checkpoint_json(path).get("opt") or {}
    candidates = [(read_vocab, opt.get("input_json")),
                  (lambda t7: load_model(t7).vocab, path[:-len(".json")] + ".t7")]
    for reader, source in candidates:
        if isinstance(source, str) and source and os.path.isfile(source):
            try:
                return reader(source)
            except (TorchRNNError, OSError):
                continue
    return None


def data_unit(paths):
    """What one loss value is per: "sample" when every run with a known vocabulary learned
    bytes (8-bit audio), "character" otherwise."""
    vocabs = [v for v in map(_history_vocab, paths) if v is not None]
    return "sample" if vocabs and all(map(is_byte_vocab, vocabs)) else "character"


def summarise(x, y, max_points=MAX_DRAWN):
    """Bucket a long curve: (x, mean, min, max) per bucket, at most ``max_points`` buckets,
    so that drawing costs the same for 1,000 or 1,000,000 iterations."""
    n = len(y)
    if n <= max_points:
        return x, y, y, y
    size = math.ceil(n / max_points)
    cut = (n // size) * size
    shape = (-1, size)
    xs, ys = x[:cut].reshape(shape), y[:cut].reshape(shape)
    parts = [(xs.mean(1), ys.mean(1), ys.min(1), ys.max(1))]
    if cut < n:
        parts.append((x[cut:].mean(keepdims=True), y[cut:].mean(keepdims=True),
                      y[cut:].min(keepdims=True), y[cut:].max(keepdims=True)))
    return tuple(np.concatenate(p) for p in zip(*parts))


def _check_files(paths, out_png):
    """Some inputs, none of them the PNG (it would be replaced before being read)."""
    if not paths:
        raise TorchRNNError("no input files to plot")
    check_distinct(**{f"input_{n + 1}": path for n, path in enumerate(paths)},
                   output_picture=out_png)


def plot_losses(paths, out_png, title=None, log_y=False, unit="auto"):
    """Draw the loss curves of ``paths`` (checkpoint JSONs or -log_csv files) into a PNG."""
    _check_files(paths, out_png)
    plt = _pyplot()
    fig = loss_figure(paths, title=title, log_y=log_y, unit=unit)
    _save(fig, out_png)
    plt.close(fig)


def loss_figure(paths, title=None, log_y=False, unit="auto"):
    """The matplotlib figure of :func:`plot_losses`; ``unit`` "auto" reads it from the data."""
    plt = _pyplot()
    histories = [(p, read_history(p)) for p in paths]
    if unit == "auto":
        unit = data_unit(paths)
    fig, ax = plt.subplots(figsize=(9, 5), dpi=110)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for n, (path, (its, train, val_it, val)) in enumerate(histories):
        color = colors[n % len(colors)]
        name = os.path.basename(path) if len(paths) > 1 else ""
        if train.size:
            x, mean, low, high = summarise(its, train)
            if low is not mean:
                ax.fill_between(x, low, high, color=color, alpha=0.15, linewidth=0)
            ax.plot(x, mean, color=color, linewidth=1.0, label=f"{name} train".strip())
        if val.size:
            val_color = colors[1] if len(paths) == 1 else color
            ax.plot(val_it, val, "o-", color=val_color, markersize=3, linewidth=1.5,
                    markeredgecolor="black", markeredgewidth=0.4,
                    label=f"{name} validation".strip())
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"loss (cross-entropy, nats per {unit})")
    if log_y:
        _log_axis(ax)
    ax.set_title(title or (os.path.basename(paths[0]) if len(paths) == 1 else "loss"))
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def _log_axis(ax):
    """A logarithmic y axis labelled in plain decimals (2.5, 3, 4), not 4.1 x 10^0."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    plain = FuncFormatter(lambda value, _pos: f"{value:.3g}")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_locator(LogLocator(subs=(1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8)))
    ax.yaxis.set_minor_formatter(plain)


def plot_spectrograms(wav_paths, out_png, labels=None, max_seconds=None):
    """Spectrograms of WAV files side by side (e.g. training audio and generated audio)."""
    from scipy.signal import spectrogram

    from ..audio import read_wav
    _check_files(wav_paths, out_png)
    if max_seconds is not None and not 0 < max_seconds < math.inf:
        raise TorchRNNError(f"max_seconds must be a finite number above 0, got {max_seconds}")
    if labels is not None and len(labels) != len(wav_paths):
        raise TorchRNNError(f"{len(labels)} labels for {len(wav_paths)} WAV files")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(wav_paths), figsize=(6 * len(wav_paths), 4), dpi=110,
                             squeeze=False)
    for ax, path, label in zip(axes[0], wav_paths, labels or wav_paths):
        rate, data = read_wav(path)                      # mono float, any WAV encoding
        if max_seconds is not None and max_seconds * rate < data.size:
            data = data[:int(max_seconds * rate)]
        if data.size < 256:
            raise TorchRNNError(f"{path}: too short for a spectrogram ({data.size} samples)")
        freqs, times, power = spectrogram(data - data.mean(), fs=rate, nperseg=256,
                                          noverlap=192)
        ax.pcolormesh(times, freqs, 10 * np.log10(power + 1e-12), shading="auto",
                      cmap="magma")
        ax.set_title(os.path.basename(label))
        ax.set_xlabel("seconds")
        ax.set_ylabel("Hz")
    fig.tight_layout()
    _save(fig, out_png)
    plt.close(fig)


def _save(fig, out_png):
    with atomic_path(out_png, "PNG file") as tmp:
        fig.savefig(tmp, format="png")
