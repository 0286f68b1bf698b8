"""``torchrnn-charrnn-sample``: char-rnn's ``th sample.lua MODEL.t7 [flags]``, byte for byte.

The checkpoint is the one positional argument (anywhere among the flags, as torch.CmdLine
takes it); the flags and defaults are sample.lua's (torchrnn_py/charrnn/sample_lua.py, which
does the work). Each file written is named on stderr unless ``-verbose 0``; bad input is one
line on stderr.
"""
import sys

from ..charrnn.sample_lua import ARGUMENT, OPTIONS, PROG, run
from ..cmdline import (UsageError, format_torch_help, parse_torch_options, report_written,
                       run_main)
from ..progress import ProgressLine

_HELP_FLAGS = ("-h", "-help", "--help")


def split_arguments(argv):
    """(positional arguments, flags with their values, whether help was asked), as
    torch.CmdLine tells them apart: a known flag takes the next word as its value (even
    ``-h``: ``-primetext -h`` primes with "-h"); any other word not starting with '-' is an
    argument. Unknown flags stay with the flags, for the parser to report."""
    known = {dashes + name for name, _, _ in OPTIONS for dashes in ("-", "--")}
    positional, flags, wants_help = [], [], False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in known:
            flags += argv[i:i + 2]
            i += 2
            continue
        wants_help = wants_help or arg in _HELP_FLAGS
        (flags if arg.startswith("-") and arg != "-" else positional).append(arg)
        i += 1
    return positional, flags, wants_help


def parse_arguments(argv):
    """``argv`` -> the options dict, with the checkpoint under "model". ``-h`` prints the
    help and exits 0; a missing or extra argument or a bad flag is a UsageError."""
    positional, flags, wants_help = split_arguments(argv)
    if wants_help:
        print(help_text())
        raise SystemExit(0)
    opt = parse_torch_options(OPTIONS, flags, PROG)
    if not positional:
        raise UsageError(f"missing argument: the model checkpoint (usage: {PROG} MODEL.t7 "
                         f"[options]; see {PROG} -h)")
    if len(positional) > 1:
        raise UsageError(f"unexpected argument {positional[1]!r}: only one model checkpoint "
                         f"is taken, options are given as -name value (see {PROG} -h)")
    opt["model"] = positional[0]
    return opt


def help_text():
    """sample.lua's help: the argument, then the options."""
    options = format_torch_help(OPTIONS, PROG).split("\n", 1)[1]
    return (f"Usage: {PROG} <{ARGUMENT[0]}> [options]\n\nSample from a character-level "
            f"language model (a char-rnn checkpoint)\n\nArguments:\n  <{ARGUMENT[0]}>  "
            f"{ARGUMENT[1]}\n{options}")


def main(argv=None):
    """``torchrnn-charrnn-sample MODEL.t7 [flags]``: char-rnn's sample.lua."""
    def body(args):
        opt = parse_arguments(args)
        sys.stdout.flush()
        written = []
        with ProgressLine(
                "sample", unit="chars", enabled=None if opt["output_file"] else False) as line:
            run(opt, sys.stdout.buffer, progress=line.update, on_written=written.append)
        for path in written if opt["verbose"] != 0 else []:   # once the progress line is gone
            report_written(path)
        return 0
    return run_main(PROG, body, argv)
