"""``torchrnn-eval``: eval.lua's command line over :func:`torchrnn_py.evaluate.evaluate`."""
from ..cmdline import parse_torch_options, run_main
from ..evaluate import OPTIONS, PROG, evaluate


def main(argv=None):
    """``torchrnn-eval``: eval.lua's command line."""
    def body(args):
        opt = parse_torch_options(OPTIONS, args, PROG)
        loss = evaluate(verbose=True, **opt)
        print("%s loss = %f" % (opt["split"], loss))
        return 0
    return run_main(PROG, body, argv)
