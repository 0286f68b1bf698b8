"""``torchrnn-novel-substrings``: torch-rnn's scripts/novel_substrings.py command line over
:func:`torchrnn_py.novel_substrings.iter_novel_fractions`."""
import sys

from ..cmdline import ArgumentParser, print_stderr, print_stdout, run_main
from ..fileio import check_stdout_distinct
from ..novel_substrings import (DEFAULT_MAX_LENGTH, PROG, check_max_length,
                                iter_novel_fractions, read_text)


def build_parser():
    """The original's two positional arguments, plus --max_length."""
    parser = ArgumentParser(prog=PROG, description="For L = 1..max_length, print the fraction "
                            "of the sampled text's length-L substrings that never occur in the "
                            "training text (torch-rnn's scripts/novel_substrings.py).")
    parser.add_argument("sampled_text")
    parser.add_argument("training_text")
    parser.add_argument("--max_length", type=int, default=DEFAULT_MAX_LENGTH,
                        help="largest substring length (default %(default)s)")
    return parser


def _command(argv):
    args = build_parser().parse_args(argv)
    check_max_length(args.max_length)
    check_stdout_distinct(sampled_text=args.sampled_text, training_text=args.training_text)
    sampled = read_text(args.sampled_text, "sampled text file")
    training = read_text(args.training_text, "training text file")
    for length, fraction in iter_novel_fractions(sampled, training, args.max_length):
        print_stdout(f"{length} {fraction}")      # print(length, fraction), as the original
    if args.max_length > len(sampled):
        sys.stdout.flush()
        print_stderr(f"{PROG}: note: the sampled text has only {len(sampled)} characters, so "
                     f"there are no substrings of length {len(sampled) + 1} to "
                     f"{args.max_length}; stopped at L = {len(sampled)} (the original fails "
                     f"there dividing by zero)")
    return 0


def main(argv=None):
    """``torchrnn-novel-substrings SAMPLED TRAINING [--max_length]``."""
    return run_main(PROG, _command, argv)
