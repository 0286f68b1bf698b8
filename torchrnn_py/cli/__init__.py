"""The command layer: every command's ``main(argv) -> int``, one module per stage, and THE
table of commands.

:data:`COMMANDS` is the one place a command is named: ``python -m torchrnn_py <command>``
dispatches through it, and setup.cfg's console_scripts repeat it (a test keeps them equal).
Targets are ``"module:function"`` strings resolved only when a command runs, so importing
this package imports no command module (and not torch).
"""
import contextlib
import importlib
import signal
import sys
import threading

from ..cmdline import print_stderr

# command -> (console script, "module:function"): the names people know from torch-rnn
# and BinToUTF8.
COMMANDS = {
    "preprocess": ("torchrnn-preprocess", "torchrnn_py.cli.preprocess:main"),
    "train": ("torchrnn-train", "torchrnn_py.cli.train:main"),
    "sample": ("torchrnn-sample", "torchrnn_py.cli.sample:main"),
    "charrnn-sample": ("torchrnn-charrnn-sample", "torchrnn_py.cli.charrnn_sample:main"),
    "eval": ("torchrnn-eval", "torchrnn_py.cli.evaluate:main"),
    "novel_substrings": ("torchrnn-novel-substrings", "torchrnn_py.cli.novel_substrings:main"),
    "plot": ("torchrnn-plot", "torchrnn_py.cli.plot:main"),
    "audio": ("torchrnn-audio", "torchrnn_py.cli.audio:main"),
    "bintoutf8": ("bintoutf8", "torchrnn_py.cli.bintoutf8:main_encode"),
    "utf8tobin": ("utf8tobin", "torchrnn_py.cli.bintoutf8:main_decode"),
    "convert": ("torchrnn-convert", "torchrnn_py.cli.convert:main"),
    "charrnn-train": ("torchrnn-charrnn-train", "torchrnn_py.cli.charrnn_train:main"),
}


def console_scripts():
    """``["script = module:function", ...]``: the console_scripts that setup.cfg declares,
    each a function of torchrnn_py/cli/scripts.py that imports its command when run."""
    return [f"{script} = torchrnn_py.cli.scripts:{script_function(command)}"
            for command, (script, _) in COMMANDS.items()]


def script_function(command):
    """The name of ``command``'s function in torchrnn_py/cli/scripts.py."""
    return command.replace("-", "_")


def resolve(command):
    """The ``main(argv) -> int`` of ``command`` (imported now)."""
    module, function = COMMANDS[command][1].split(":")
    return getattr(importlib.import_module(module), function)


def main(argv=None):
    """``python -m torchrnn_py <command> [flags]``: run one command of the table."""
    argv = sys.argv[1:] if argv is None else list(argv)
    usage = ("usage: python -m torchrnn_py <command> [flags]\ncommands: " + ", ".join(COMMANDS)
             + "\n(each command takes -h for its own flags)")
    if not argv:                                   # a usage error: on stderr
        print_stderr(usage)
        return 2
    if argv[0] in ("-h", "--help", "help"):
        return _print_help(usage)
    if argv[0] not in COMMANDS:
        print_stderr(f"torchrnn_py: error: unknown command {argv[0]!r} (one of: "
                     f"{', '.join(COMMANDS)})")
        return 2
    return run(argv[0], argv[1:])


def _print_help(usage):
    """The dispatcher's help on stdout; a write that fails (a full disk) is one line."""
    try:
        print(usage, file=sys.stdout, flush=True)
    except BrokenPipeError:
        return 141
    except OSError as err:
        print_stderr(f"torchrnn_py: error: stdout: cannot write the help: "
                     f"{err.strerror or err}")
        return 1
    return 0


def run(command, argv=None):
    """Import ``command`` and run it on ``argv`` (None: sys.argv's). Ctrl-C while it
    imports (torch takes seconds) ends as during the command: one line, exit 130. The
    signal is held until the imports are done: interrupted halfway, numpy and torch can
    fail later in other ways, or abort the process from C++."""
    caught = []
    with _sigint_held(caught):
        try:
            command_main = resolve(command)
        except KeyboardInterrupt:
            caught.append(signal.SIGINT)
    if caught:
        print_stderr(f"{COMMANDS[command][0]}: interrupted")
        return 130
    return command_main(argv)


@contextlib.contextmanager
def _sigint_held(caught):
    """While active (in the main thread, unless SIGINT is ignored), SIGINT is noted in
    ``caught`` instead of raising KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
