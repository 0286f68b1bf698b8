"""setup.cfg's console scripts: one function per command of the table in
torchrnn_py/cli/__init__.py (``torchrnn-train`` is :func:`train`, ``torchrnn-charrnn-sample``
is ``charrnn_sample``). Importing this module imports no command and not torch, so Ctrl-C
while a command loads is one line (:func:`torchrnn_py.cli.run`), never a traceback."""
import functools

from . import COMMANDS, run, script_function

_COMMAND_OF = {script_function(command): command for command in COMMANDS}


def __getattr__(name):
    if name in _COMMAND_OF:
        return functools.partial(run, _COMMAND_OF[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
