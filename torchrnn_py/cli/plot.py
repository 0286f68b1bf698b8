"""``torchrnn-plot``: loss curves (or spectrograms) to a PNG, over torchrnn_py/plot/__init__.py."""
import argparse
import math

from ..cmdline import ArgumentParser, run_main
from ..fileio import check_stdout_distinct
from ..plot import PROG, UNITS, plot_losses, plot_spectrograms


def positive_seconds(text):
    """argparse type of ``--seconds``: a finite number above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, found {text!r}") \
            from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds above 0, "
                                         f"found {text!r}")
    return value


def build_parser():
    parser = ArgumentParser(prog=PROG, description="Draw loss curves of training runs "
                            "(checkpoint .json or -log_csv files), or spectrograms of WAVs.")
    parser.add_argument("inputs", nargs="+", help="checkpoint JSON / CSV files (or WAVs)")
    parser.add_argument("-o", "--output", default="curve.png", help="PNG to write")
    parser.add_argument("--title")
    parser.add_argument("--log_y", action="store_true", help="logarithmic loss axis")
    parser.add_argument("--unit", choices=UNITS, default="auto",
                        help="what the loss is per (axis label); auto: 'sample' for a model "
                        "of bytes (audio), found from its vocabulary, else 'character'")
    parser.add_argument("--spectrogram", action="store_true",
                        help="the inputs are WAV files: draw their spectrograms")
    parser.add_argument("--seconds", type=positive_seconds,
                        help="with --spectrogram: only the first this many seconds")
    return parser


def _command(argv):
    args = build_parser().parse_args(argv)
    check_stdout_distinct(**{f"input_{k}": path for k, path in enumerate(args.inputs, 1)})
    if args.spectrogram:
        plot_spectrograms(args.inputs, args.output, max_seconds=args.seconds)
    else:
        plot_losses(args.inputs, args.output, title=args.title, log_y=args.log_y,
                    unit=args.unit)
    print(f"wrote {args.output}")
    return 0


def main(argv=None):
    """``torchrnn-plot FILE.json [...] -o curve.png``."""
    return run_main(PROG, _command, argv)
