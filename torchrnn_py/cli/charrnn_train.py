"""``torchrnn-charrnn-train``: char-rnn's ``th train.lua`` command line over
:func:`torchrnn_py.charrnn.train.train_charrnn`."""
import sys

from ..charrnn.train import OPTIONS, PROG, train_charrnn
from ..cmdline import parse_torch_options, print_stderr, run_main


def main(argv=None):
    """Parse train.lua's flags, train, print its lines; returns the exit status."""
    def body(args):
        opt = parse_torch_options(OPTIONS, args, PROG)
        train_charrnn(verbose=True, note=lambda text: print_stderr(f"{PROG}: note: {text}"),
                      **opt)
        return 0
    return run_main(PROG, body, argv)


if __name__ == "__main__":
    sys.exit(main())
