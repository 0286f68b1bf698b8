"""``torchrnn-charrnn-train``: char-rnn's ``th train.lua`` command line over
:func:`torchrnn_py.charrnn.train.train_charrnn`."""
import sys

from ..charrnn.train import OPTIONS, PROG, train_charrnn
from ..cmdline import parse_torch_options, run_main, sigterm_as_interrupt


def main(argv=None):
    """Parse train.lua's flags, train, print its lines; returns the exit status."""
    def body(args):
        opt = parse_torch_options(OPTIONS, args, PROG)
        with sigterm_as_interrupt():       # killed: temporary files go, as on Ctrl-C
            train_charrnn(verbose=True, note=lambda text: print(
                f"{PROG}: note: {text}", file=sys.stderr, flush=True), **opt)
        return 0
    return run_main(PROG, body, argv)


if __name__ == "__main__":
    sys.exit(main())
