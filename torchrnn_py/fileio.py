"""Small file helpers shared by every stage: clear input errors and atomic outputs."""
import contextlib
import json
import os
import shutil
import tempfile

from .errors import TorchRNNError


def describe_os_error(path, err):
    """One line saying what went wrong with ``path``, from an OSError."""
    reason = err.strerror or str(err)
    return f"{path}: {reason}"


def check_input_file(path, what="input file"):
    """Raise TorchRNNError unless ``path`` is a readable regular file."""
    if not path:
        raise TorchRNNError(f"no {what} given")
    if not os.path.exists(path):
        raise TorchRNNError(f"{path}: {what} not found")
    if os.path.isdir(path):
        raise TorchRNNError(f"{path}: expected a {what}, found a directory")
    if not os.access(path, os.R_OK):
        raise TorchRNNError(f"{path}: {what} is not readable (permission denied)")


def read_input_bytes(path, what="input file"):
    """The whole content of a (small) input file, or one clear error naming it."""
    check_input_file(path, what)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        raise TorchRNNError(f"{path}: cannot read {what}: {err.strerror or err}") from None


class _DuplicateKey(Exception):
    pass


def _unique_keys(pairs):
    """object_pairs_hook: a JSON object as a dict, refusing a key given twice (json keeps
    the last silently, which would hide a damaged vocabulary)."""
    result = dict(pairs)
    if len(result) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result


def parse_json(raw, message):
    """Parse ``raw`` (bytes) as strict UTF-8 JSON; every failure is one TorchRNNError whose
    text is ``message(kind, reason)`` (kind: 'utf-8' or 'json')."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise TorchRNNError(message("utf-8", f"bad byte at offset {err.start}")) from None
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as err:
        reason = f"{err.msg} at line {err.lineno} column {err.colno}"
    except _DuplicateKey as err:
        key = repr(err.args[0])
        reason = f"the key {key if len(key) <= 60 else key[:57] + '...'} appears twice in one object"
    except RecursionError:
        reason = "nested too deeply to be read"
    except ValueError as err:            # e.g. an integer of more than 4300 digits
        reason = "a number has too many digits" if "digits" in str(err) else str(err)
    raise TorchRNNError(message("json", reason))


def utf8_error(err, source=None, offset=None, hint=""):
    """One line for bytes that are not UTF-8: where (``source`` and the byte ``offset``,
    default the error's own), which bytes, and why; ``hint`` is appended."""
    where = f"{source}: " if source else ""
    offset = err.start if offset is None else offset
    bad = err.object[err.start:min(err.end, err.start + 8)].hex(" ")
    return TorchRNNError(f"{where}not valid UTF-8 at byte offset {offset} "
                         f"(bytes {bad}: {err.reason}){hint}")


def check_distinct(**paths):
    """Refuse to let one output overwrite the input or another output (keyword names
    say what each path is, e.g. ``input_file=..., text_output=...``)."""
    items = [(k, v) for k, v in paths.items() if v]
    for i, (name_a, a) in enumerate(items):
        for name_b, b in items[i + 1:]:
            if _same_file(a, b):
                raise TorchRNNError(f"{b}: the {name_b.replace('_', ' ')} would overwrite the "
                                    f"{name_a.replace('_', ' ')}; choose another name")


def _same_file(a, b):
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output_path(path, what="output file", create_dir=False):
    """Raise TorchRNNError unless a file can be written at ``path``.

    With ``create_dir`` the missing parent directories are created first (as train.lua's
    ``paths.mkdir`` does for checkpoints); otherwise a missing directory is an error.
    """
    if not path:
        raise TorchRNNError(f"no {what} given")
    parent = os.path.dirname(os.path.abspath(path))
    if create_dir and not os.path.isdir(parent):
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as err:
            raise TorchRNNError(f"cannot create directory {parent} for {what} {path}: "
                                f"{err.strerror or err}") from None
    if not os.path.isdir(parent):
        raise TorchRNNError(f"{path}: cannot write {what}: directory {parent} does not exist")
    if os.path.isdir(path):
        raise TorchRNNError(f"{path}: cannot write {what}: it is a directory")
    if not os.access(parent, os.W_OK):
        raise TorchRNNError(f"{path}: cannot write {what}: directory {parent} is not writable")


class OutputGroup:
    """Output files that appear together or not at all (see :func:`atomic_outputs`).

    ``open(path, mode, what, **kw)`` gives an open temporary file beside ``path``;
    ``temp_path(path, what)`` a temporary file name, for writers that want one (h5py).
    """

    def __init__(self, create_dir=False):
        self.create_dir = create_dir
        self.entries = []           # [path, tmp, file or None, what]

    def _new(self, path, what):
        check_output_path(path, what, create_dir=self.create_dir)
        parent = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                                   dir=parent)
        self.entries.append([path, tmp, None, what])
        return fd, tmp

    def open(self, path, mode="wb", what="output file", **open_kwargs):
        fd, tmp = self._new(path, what)
        self.entries[-1][2] = os.fdopen(fd, mode, **open_kwargs)
        return self.entries[-1][2]

    def temp_path(self, path, what="output file"):
        fd, tmp = self._new(path, what)
        os.close(fd)
        return tmp

    def error(self, err):
        """The one-line error for an OSError in the body: the writes go to the file
        opened last, so it names that one."""
        reason = err.strerror or err
        if not self.entries:
            return TorchRNNError(f"cannot write output: {reason}")
        path, _, _, what = self.entries[-1]
        return TorchRNNError(f"{path}: cannot write {what}: {reason}")

    def commit(self):
        """Flush and fsync every file, then rename them all over their paths; if a rename
        fails, put back the ones already renamed (from hard-link backups)."""
        for entry in self.entries:
            path, tmp, f, what = entry
            try:
                if f is not None:
                    f.flush()
                    os.fsync(f.fileno())
                    f.close()
                    entry[2] = None
                else:
                    with open(tmp, "rb") as done:
                        os.fsync(done.fileno())
                _keep_permissions(tmp)
            except OSError as err:
                raise TorchRNNError(f"{path}: cannot write {what}: {err.strerror or err}") from None
        renamed = []                    # (path, backup or None)
        try:
            for path, tmp, _, what in self.entries:
                backup = None
                if len(self.entries) > 1 and os.path.exists(path):
                    backup = tmp[:-len(".tmp")] + ".old.tmp"
                    try:
                        os.link(path, backup)           # cheap: no data is copied
                    except OSError:                     # no hard links here (vfat, ...)
                        shutil.copy2(path, backup)
                try:
                    os.replace(tmp, path)
                except OSError as err:
                    raise TorchRNNError(f"{path}: cannot write {what}: "
                                        f"{err.strerror or err}") from None
                renamed.append((path, backup))
        except BaseException:
            for path, backup in reversed(renamed):
                with contextlib.suppress(OSError):
                    os.replace(backup, path) if backup else os.unlink(path)
            raise
        finally:
            for _, backup in renamed:
                if backup:
                    _remove_quietly(backup)
        self.entries = []

    def abort(self):
        """Remove every temporary file; the paths keep what they had."""
        for path, tmp, f, _ in self.entries:
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()
            _remove_quietly(tmp)
            _remove_quietly(tmp[:-len(".tmp")] + ".old.tmp")
        self.entries = []


@contextlib.contextmanager
def atomic_outputs(create_dir=False):
    """Write several files as one: yields an :class:`OutputGroup`; only if the body
    succeeds are all its files renamed into place, so on any error (a full disk, Ctrl-C)
    every path keeps its old content. An OSError in the body is reported against the file
    opened last (write the files one after another)."""
    group = OutputGroup(create_dir)
    try:
        yield group
        group.commit()
    except OSError as err:
        error = group.error(err)
        group.abort()
        raise error from None
    except BaseException:
        group.abort()
        raise


@contextlib.contextmanager
def atomic_output(path, mode="wb", what="output file", create_dir=False, **open_kwargs):
    """Open a temporary file beside ``path``; rename it over ``path`` only on success.

    If the body raises (or the disk fills), the temporary file is removed and whatever
    was at ``path`` before is left untouched. Yields the open file object.
    """
    with atomic_outputs(create_dir) as group:
        yield group.open(path, mode, what, **open_kwargs)


@contextlib.contextmanager
def atomic_path(path, what="output file", create_dir=False):
    """Like :func:`atomic_output`, for writers that want a file name (h5py, etc.)."""
    with atomic_outputs(create_dir) as group:
        yield group.temp_path(path, what)


def _keep_permissions(tmp):
    """mkstemp makes 0600 files; give the result the usual umask-based mode instead."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)


def _remove_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass
