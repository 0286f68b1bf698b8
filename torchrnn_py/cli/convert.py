"""``torchrnn-convert IN.t7 OUT.t7``: a char-rnn checkpoint as a torch-rnn one, over
:func:`torchrnn_py.convert.convert`."""

from ..cmdline import ArgumentParser, print_stderr, print_stdout, report_written, run_main
from ..convert import PROG, convert
from ..fileio import check_stdout_distinct


def build_parser():
    parser = ArgumentParser(prog=PROG, description="Write a char-rnn checkpoint (char-rnn's "
                            "train.lua's lm_*.t7) as a torch-rnn checkpoint: OUT.t7 and "
                            "OUT.json, which torchrnn-sample, torchrnn-eval, torchrnn-train "
                            "-init_from and (LSTM, RNN) the original torch-rnn read.")
    parser.add_argument("input", metavar="IN.t7", help="the char-rnn checkpoint to read")
    parser.add_argument("output", metavar="OUT.t7",
                        help="the torch-rnn checkpoint to write (its .json beside it)")
    return parser


def _command(argv):
    args = build_parser().parse_args(argv)
    check_stdout_distinct(input_checkpoint=args.input)     # its line: not into the input
    converted = convert(args.input, args.output, on_written=report_written)
    model = converted.checkpoint.model
    print_stdout(f"converted a {model.num_layers}-layer {converted.model_type} of "
                 f"rnn_size {model.rnn_size} over {model.vocab_size} bytes")
    if converted.model_type == "gru":
        print_stderr(f"{PROG}: note: the original torch-rnn has no GRU layer; this package's "
                     f"commands read the file (docs/migration.md)")
    return 0


def main(argv=None):
    """Command-line entry point: ``torchrnn-convert IN.t7 OUT.t7``."""
    return run_main(PROG, _command, argv)
