"""``torchrnn-charrnn-train``: char-rnn's ``th train.lua`` command line over
:func:`torchrnn_py.charrnn.train.train_charrnn`."""
import sys

from ..charrnn.train import OPTIONS, PROG, train_charrnn
from ..cmdline import parse_torch_options, run_main


def main(argv=None):
    """Parse train.lua's flags, train, print its lines; returns the exit status."""
    def body(args):
        opt = parse_torch_options(OPTIONS, args, PROG)
        if isinstance(opt["gpuid"], (int, float)) and opt["gpuid"] >= 0:
            print(f"{PROG}: note: training runs on the CPU in float64 (what char-rnn "
                  f"computes with -gpuid -1)", file=sys.stderr, flush=True)
        train_charrnn(verbose=True, **opt)
        return 0
    return run_main(PROG, body, argv)


if __name__ == "__main__":
    sys.exit(main())
