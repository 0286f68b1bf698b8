"""``torchrnn-sample``: sample.lua's command line over :func:`torchrnn_py.sample.sample`."""
import sys

from ..cmdline import (parse_torch_options, print_stdout, report_written, run_main,
                       warn_on_stderr)
from ..progress import ProgressLine
from ..sample import OPTIONS, PROG, sample


def main(argv=None):
    """``torchrnn-sample``: sample.lua's command line."""
    def body(args):
        opt = parse_torch_options(OPTIONS, args, PROG)
        quiet = parse_torch_options(OPTIONS, args, PROG, explicit_only=True).get("verbose") == 0
        sys.stdout.flush()
        written = []
        # a progress line only when the text goes to files, not to this terminal
        with ProgressLine(
                "sample", unit="chars", enabled=None if opt["output_file"] else False) as line:
            sample(out=sys.stdout.buffer, log=print_stdout, warn=warn_on_stderr(PROG),
                   progress=line.update, on_written=written.append, **opt)
        for path in [] if quiet else written:     # once the progress line is gone
            report_written(path)
        return 0
    return run_main(PROG, body, argv)
