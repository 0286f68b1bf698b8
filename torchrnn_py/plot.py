"""torchrnn-plot: pictures of a run (loss curves) and of audio (spectrograms).

``torchrnn-plot cv/checkpoint_N.json -o curve.png`` draws the training loss of every
iteration and the validation loss at each checkpoint against the iteration, from a
checkpoint's JSON (late ones hold hundreds of thousands of points) or from train's
``-log_csv`` file; several inputs are drawn on one plot. ``--spectrogram a.wav b.wav``
draws spectrograms side by side instead (training audio beside generated audio).

matplotlib is an optional extra (``pip install 'torchrnn_py[plot]'``); without it the
command says so in one line.
"""
import csv
import math
import os
import sys

import numpy as np

from .checkpoint import read_checkpoint_json
from .cmdline import ArgumentParser, run_main
from .errors import TorchRNNError
from .fileio import atomic_path, check_distinct, check_input_file

PROG = "torchrnn-plot"
MAX_DRAWN = 4000      # points per curve actually drawn; longer histories are summarised


def _pyplot():
    """matplotlib.pyplot on the file-only Agg backend, or a clear error."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise TorchRNNError("plotting needs matplotlib, which is not installed: "
                            "pip install 'torchrnn_py[plot]' (or pip install matplotlib)") from None
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


def plot_losses(paths, out_png, title=None, log_y=False):
    """Draw the loss curves of ``paths`` (checkpoint JSONs or -log_csv files) into a PNG."""
    plt = _pyplot()
    histories = [(p, read_history(p)) for p in paths]
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
    ax.set_ylabel("loss (cross-entropy, nats per character)")
    if log_y:
        ax.set_yscale("log")
    ax.set_title(title or (os.path.basename(paths[0]) if len(paths) == 1 else "loss"))
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    _save(fig, out_png)
    plt.close(fig)


def plot_spectrograms(wav_paths, out_png, labels=None, max_seconds=None):
    """Spectrograms of WAV files side by side (e.g. training audio and generated audio)."""
    from scipy.signal import spectrogram

    from .audio import read_wav
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(wav_paths), figsize=(6 * len(wav_paths), 4), dpi=110,
                             squeeze=False)
    for ax, path, label in zip(axes[0], wav_paths, labels or wav_paths):
        rate, data = read_wav(path)                      # mono float, any WAV encoding
        if max_seconds:
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


def build_parser():
    parser = ArgumentParser(prog=PROG, description="Draw loss curves of training runs "
                            "(checkpoint .json or -log_csv files), or spectrograms of WAVs.")
    parser.add_argument("inputs", nargs="+", help="checkpoint JSON / CSV files (or WAVs)")
    parser.add_argument("-o", "--output", default="curve.png", help="PNG to write")
    parser.add_argument("--title")
    parser.add_argument("--log_y", action="store_true", help="logarithmic loss axis")
    parser.add_argument("--spectrogram", action="store_true",
                        help="the inputs are WAV files: draw their spectrograms")
    parser.add_argument("--seconds", type=float, help="with --spectrogram: only the start")
    return parser


def _command(argv):
    args = build_parser().parse_args(argv)
    check_distinct(**{f"input_{n + 1}": path for n, path in enumerate(args.inputs)},
                   output_picture=args.output)
    if args.spectrogram:
        plot_spectrograms(args.inputs, args.output, max_seconds=args.seconds)
    else:
        plot_losses(args.inputs, args.output, title=args.title, log_y=args.log_y)
    print(f"wrote {args.output}")
    return 0


def main(argv=None):
    """``torchrnn-plot FILE.json [...] -o curve.png``."""
    return run_main(PROG, _command, argv)


if __name__ == "__main__":
    sys.exit(main())
