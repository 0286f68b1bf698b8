"""Command-line plumbing shared by every command.

``parse_torch_options`` reads flags the way Torch7's ``torch.CmdLine`` does for train.lua,
sample.lua and eval.lua (``-name value``; numbers for numeric defaults; booleans as 0/1),
also accepting ``--name value``. ``ArgumentParser`` is argparse with one-line errors, for the
commands whose originals used argparse (preprocess.py). Both suggest the closest known flag
for an unknown one. ``run_main`` turns a :class:`TorchRNNError` or an OS error into one line
on stderr and a non-zero exit code. ``require_finite`` refuses NaN/infinity for the options a
command names; ``sigterm_as_interrupt`` makes SIGTERM clean up as Ctrl-C; ``report_written``
prints the ``wrote PATH`` line and ``print_stdout`` a line whose failure names stdout.
``make_printers`` gives the Lua-style ``print`` (and the warnings) that the library functions
and the commands share; ``lua_number`` formats a number as Lua's print does.
"""
import argparse
import contextlib
import dataclasses
import difflib
import math
import numbers
import os
import signal
import sys
import threading

from .errors import TorchRNNError

USAGE_ERROR = 2


class UsageError(TorchRNNError):
    """A malformed command line (unknown flag, missing value, wrong type)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the same clean-up runs (see sigterm_as_interrupt)."""


def closest_flag(arg, names):
    """The known option name closest to ``arg`` (dashes ignored), with ``arg``'s dashes;
    None if nothing is close (difflib's ratio below 0.6)."""
    dashes = "--" if arg.startswith("--") else "-"
    match = difflib.get_close_matches(arg.lstrip("-"), list(names), n=1)
    return dashes + match[0] if match else None


def print_stderr(message):
    """``message`` as a line on stderr, or nowhere when stderr is closed (``2>&-``: then
    ``print(file=None)`` would put it on stdout, among the original's lines)."""
    if sys.stderr is not None:
        print(message, file=sys.stderr, flush=True)


def report_written(path):
    """The ``wrote PATH`` line on stderr: every command's one format for a file it wrote
    (stdout keeps the original's lines)."""
    print_stderr(f"wrote {path}")


def lua_number(value):
    """A number as Lua's print shows it (``%.14g``)."""
    return "%.14g" % value


def warn_on_stderr(prog):
    """A ``warn`` callback printing ``prog: warning: ...`` on stderr."""
    return lambda msg: print_stderr(f"{prog}: warning: {msg}")


def make_printers(verbose, log=None, warn=None, prog="torchrnn"):
    """``say(*parts)`` prints like Lua's print (parts joined by tabs) to stdout, or hands
    the line to ``log``; ``warn(msg)`` goes to stderr or ``warn``. Silent unless verbose."""
    def say(*parts):
        line = "\t".join(str(p) for p in parts)
        if log is not None:
            log(line)
        elif verbose:
            print(line, flush=True)

    if warn is None:
        warn = warn_on_stderr(prog) if verbose else (lambda msg: None)
    return say, warn


def print_stdout(line):
    """``print(line)`` to stdout, flushed; a failed write (a full disk) is one line naming
    stdout. A reader that went away stays a BrokenPipeError (run_main stops quietly)."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        raise
    except OSError as err:
        raise TorchRNNError(f"stdout: cannot write: {err.strerror or err}") from None


def require_finite(opt, names):
    """Refuse NaN and infinity for the numeric options ``names`` of ``opt`` (range checks
    such as ``x < 1`` are false for NaN, so they let it through)."""
    for name in names:
        value = opt.get(name)
        if isinstance(value, numbers.Real) and not math.isfinite(value):
            raise TorchRNNError(f"-{name} must be a finite number, got {value}")


def lua_tonumber(text):
    """Parse ``text`` as Lua's ``tonumber`` would; integral values come back as int."""
    s = text.strip()
    try:
        value = float(s)
    except ValueError:
        try:
            return int(s, 16) if s.lower().startswith(("0x", "-0x")) else None
        except ValueError:
            return None
    if value != value or value in (float("inf"), float("-inf")):
        return value if s.lower() in ("inf", "-inf", "nan") else None
    if value.is_integer() and abs(value) < 2 ** 53:
        return int(value)
    return value


def parse_torch_options(options, argv, prog, explicit_only=False):
    """Parse ``argv`` against ``options`` = [(name, default, help), ...] like torch.CmdLine.

    Returns a dict from option name (without dashes) to value, defaults filled in, in the
    order the options were declared (``explicit_only``: only the options given in argv).
    ``-h``/``-help``/``--help`` print the help and exit 0.
    """
    by_flag = {}
    params = {}
    given = set()
    for name, default, _help in options:
        by_flag["-" + name] = (name, default)
        by_flag["--" + name] = (name, default)
        params[name] = default
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "-help", "--help"):
            print(format_torch_help(options, prog))
            raise SystemExit(0)
        if arg.startswith("--") and "=" in arg:
            arg, inline = arg.split("=", 1)
            rest = [inline]
        else:
            rest = argv[i + 1:i + 2]
            i += 1
        if arg not in by_flag:
            if arg.startswith("-"):
                guess = closest_flag(arg, params)
                hint = f"did you mean {guess}? " if guess else ""
                raise UsageError(f"unknown option {arg} ({hint}see {prog} -h)")
            raise UsageError(f"unexpected argument {arg!r}: options are given as -name value "
                             f"(see {prog} -h)")
        name, default = by_flag[arg]
        if not rest:
            raise UsageError(f"missing value for option {arg}")
        value = rest[0]
        i += 1
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            number = lua_tonumber(value)
            if number is None:
                raise UsageError(f"invalid value for option {arg}: expected a number, "
                                 f"found {value!r}")
            value = number
        params[name] = value
        given.add(name)
    return {k: v for k, v in params.items() if k in given} if explicit_only else params


def resolve_keyword_options(options, defaults):
    """A library call's keyword options over a command's defaults; unknown names are an
    error (the library functions take exactly the command's flags)."""
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise TorchRNNError(f"unknown option(s): {', '.join(unknown)}")
    opt = dict(defaults)
    opt.update(options)
    return opt


def options_class(class_name, options):
    """A dataclass with one field per ``(name, default, help)`` of ``options``, in their
    order, so that a command's code reads ``opt.rnn_size`` (a typo is an AttributeError
    at once, not a KeyError later); ``as_dict()`` gives the options as a dict in that order."""
    fields = [(name, type(default), dataclasses.field(default=default))
              for name, default, _ in options]
    return dataclasses.make_dataclass(
        class_name, fields, namespace={"as_dict": lambda self: dict(vars(self))})


def format_torch_help(options, prog):
    """The option list in the spirit of torch.CmdLine's help."""
    width = max(len(name) for name, _, _ in options) + 2
    lines = [f"Usage: {prog} [options]", "", "Options:"]
    for name, default, help_text in options:
        shown = repr(default) if isinstance(default, str) else default
        lines.append(f"  -{name.ljust(width)} {help_text} [{shown}]")
    return "\n".join(lines)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line on stderr (no usage dump), and an
    unknown option suggests the closest known one."""

    def parse_args(self, args=None, namespace=None):
        namespace, extras = self.parse_known_args(args, namespace)
        if extras:
            names = [flag.lstrip("-") for action in self._actions
                     for flag in action.option_strings if flag.startswith("--")]
            first = extras[0]
            guess = closest_flag(first, names) if first.startswith("-") else None
            hint = f" (did you mean {guess}? see {self.prog} -h)" if guess else ""
            self.error(f"unrecognized arguments: {' '.join(extras)}{hint}")
        return namespace

    def error(self, message):
        raise UsageError(message)

    def print_help(self, file=None):
        """The help, flushed, so that one lost on a full disk is an error, not exit 0."""
        file = sys.stdout if file is None else file
        try:                                # (argparse's own print_help ignores OSError)
            file.write(self.format_help())
            file.flush()
        except BrokenPipeError:
            raise
        except OSError as err:
            raise TorchRNNError(f"stdout: cannot write the help: {err.strerror or err}") \
                from None


@contextlib.contextmanager
def sigterm_as_interrupt():
    """While active, SIGTERM raises :class:`Terminated` (a KeyboardInterrupt), so that a
    killed command removes its temporary files as Ctrl-C does. Does nothing outside the
    main thread (where Python cannot install signal handlers)."""
    def handler(signum, frame):
        raise Terminated()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_main(prog, body, argv, report_errors=True):
    """Run ``body(argv)`` as a command: user errors become one line and an exit code.

    Returns the exit status: body's own, 1 for a TorchRNNError or OSError, 2 for a usage
    error, 130 for Ctrl-C, 143 for SIGTERM (see sigterm_as_interrupt). Unexpected
    exceptions are left to show their traceback: they are bugs, not bad input.
    ``report_errors=False`` keeps the error lines to itself.
    """
    def report(message):
        if report_errors:
            print_stderr(message)

    if argv is None:
        argv = sys.argv[1:]
    if sys.stdout is None:                 # started with stdout closed (>&-)
        report(f"{prog}: error: stdout is closed; give the command somewhere to write")
        return 1
    try:
        with sigterm_as_interrupt():     # killed: temporary files go, as on Ctrl-C
            status = body(list(argv))
        return 0 if status is None else status
    except UsageError as err:
        report(f"{prog}: error: {err}")
        return USAGE_ERROR
    except TorchRNNError as err:
        report(f"{prog}: error: {err}")
        return 1
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as err:
        where = f"{err.filename}: " if getattr(err, "filename", None) else ""
        report(f"{prog}: error: {where}{err.strerror or err}")
        return 1
    except Terminated:
        report(f"{prog}: terminated")
        return 143
    except KeyboardInterrupt:
        report(f"{prog}: interrupted")
        return 130
