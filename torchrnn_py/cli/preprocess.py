"""``torchrnn-preprocess``: torch-rnn's scripts/preprocess.py command line over
:func:`torchrnn_py.preprocess.preprocess`."""
import numpy as np

from ..cmdline import ArgumentParser, print_stdout, report_written, run_main
from ..fileio import check_stdout_distinct
from ..preprocess import PROG, preprocess
from ..progress import ProgressLine


def build_parser():
    """The original's argparse flags, names and defaults unchanged; each also answers to
    its single-dash form (``-input_txt``), as torch-rnn's Lua commands spell flags."""
    parser = ArgumentParser(prog=PROG, description="Turn a text file into the HDF5 and JSON "
                            "files that train reads (torch-rnn's scripts/preprocess.py).")

    def flag(name, **kwargs):
        parser.add_argument("--" + name, "-" + name, dest=name, **kwargs)

    flag("input_txt", default="data/tiny-shakespeare.txt", metavar="FILE",
         help="the text to read (default: %(default)s)")
    flag("output_h5", default="data/tiny-shakespeare.h5", metavar="FILE",
         help="HDF5 file to write, with the token ids in /train, /val and /test "
              "(default: %(default)s)")
    flag("output_json", default="data/tiny-shakespeare.json", metavar="FILE",
         help="JSON file to write, with the vocabulary: idx_to_token and token_to_idx "
              "(default: %(default)s)")
    flag("val_frac", type=float, default=0.1, metavar="F",
         help="fraction of the tokens for /val, 0 <= F < 1 (default: %(default)s)")
    flag("test_frac", type=float, default=0.1, metavar="F",
         help="fraction of the tokens for /test, 0 <= F < 1; val_frac + test_frac must be "
              "below 1, the rest is /train (default: %(default)s)")
    flag("quiet", action="store_true",
         help="print nothing: no summary, no progress, no 'wrote FILE' lines")
    flag("encoding", default="utf-8", metavar="NAME",
         help="how the text is encoded: a Python codec name (utf-8, latin-1, utf-16, ...), "
              "one token per character; or 'bytes', one token per byte, bytes above 127 "
              "named [N] (default: %(default)s)")
    return parser


def _command(argv):
    args = build_parser().parse_args(argv)
    if not args.quiet:                        # the summary is printed: not into the input
        check_stdout_distinct(input_txt=args.input_txt)
    written = []
    with ProgressLine("preprocess", enabled=None if not args.quiet else False) as line:
        result = preprocess(args.input_txt, args.output_h5, args.output_json,
                            val_frac=args.val_frac, test_frac=args.test_frac,
                            encoding=args.encoding, progress=line.update,
                            on_written=written.append)
    if not args.quiet:
        for path in written:                  # once the progress line is gone
            report_written(path)
        print_stdout(summary_lines(result))
    return 0


def summary_lines(result):
    """The original's summary, line for line (Python 3's print of its dtype line)."""
    return "\n".join([
        f"Total vocabulary size: {result['vocab_size']}",
        f"Total tokens in file: {result['total']}",
        f"  Training size: {result['train_size']}",
        f"  Val size: {result['val_size']}",
        f"  Test size: {result['test_size']}",
        f"Using dtype  <class 'numpy.{np.dtype(result['dtype']).name}'>",
    ])


def main(argv=None):
    """Command-line entry point: ``torchrnn-preprocess --input_txt ... [--quiet]``."""
    return run_main(PROG, _command, argv)
