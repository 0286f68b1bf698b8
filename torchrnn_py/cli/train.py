"""``torchrnn-train``: train.lua's command line over :func:`torchrnn_py.train.train`."""
import sys

from .. import distributed
from ..cmdline import parse_torch_options, run_main
from ..train import OPTIONS, PROG, train


def main(argv=None):
    """Parse train.lua's flags, train, print its lines; returns the exit status."""
    def body(args):
        given = parse_torch_options(OPTIONS, args, PROG, explicit_only=True)
        train(verbose=True, handle_signals=True, **given)
        return 0
    # under torchrun every process meets the same bad input: only rank 0 reports it
    return run_main(PROG, body, argv, report_errors=not distributed.is_secondary())


if __name__ == "__main__":
    sys.exit(main())
