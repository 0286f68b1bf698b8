"""Outputs: whether a path can be written and how (replaced atomically, or written through
when it is a device, a FIFO or a /proc link), and :class:`OutputGroup` with the
:func:`atomic_outputs` / :func:`atomic_output` / :func:`atomic_path` context managers, so that a
failed write (a full disk, Ctrl-C) leaves every path as it was."""
import contextlib
import errno
import os
import shutil
import stat
import sys
import tempfile

from ..errors import TorchRNNError
from .inputs import check_file_name, file_kind
from .temps import remove_stale_temps


def check_distinct(**paths):
    """Refuse to let one output overwrite the input or another output (keyword names
    say what each path is, e.g. ``input_file=..., text_output=...``)."""
    items = [(k, v) for k, v in paths.items() if v]
    for name, path in items:
        check_file_name(path, name.replace("_", " "))
    for i, (name_a, a) in enumerate(items):
        for name_b, b in items[i + 1:]:
            if _same_file(a, b):
                raise TorchRNNError(f"{b}: the {name_b.replace('_', ' ')} would overwrite the "
                                    f"{name_a.replace('_', ' ')}; choose another name")


def check_stdout_distinct(stream=None, /, **inputs):
    """Refuse, before anything is written, a stdout (or the open ``stream`` given) that is
    a regular file which IS one of ``inputs`` (same st_dev and st_ino; keyword names say
    what each path is): ``cmd 1<> input`` or ``cmd >> input`` would write into it. A stream
    with no file behind it (a pipe, a terminal, io.BytesIO) passes."""
    stream = sys.stdout if stream is None else stream
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):   # no descriptor, or closed
        return
    if not stat.S_ISREG(st.st_mode):
        return
    for name, path in inputs.items():
        try:
            other = os.stat(path) if path else None
        except (OSError, ValueError):
            continue
        if other is not None and (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
            raise TorchRNNError(f"{path}: stdout is this {name.replace('_', ' ')}, and the "
                                f"output would be written into it; expected stdout to be "
                                f"another file, a pipe or a terminal")


def _same_file(a, b):
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output_path(path, what="output file", create_dir=False):
    """Raise TorchRNNError unless a file can be written at ``path``.

    With ``create_dir`` the missing parent directories (of a symlink's target) are created
    first (as train.lua's ``paths.mkdir`` does for checkpoints); otherwise a missing
    directory is an error. A character device or FIFO passes if it is writable (it is
    written through, see :class:`OutputGroup`); a block device or socket is refused.
    """
    if not path:
        raise TorchRNNError(f"no {what} given")
    check_file_name(path, what)
    target, st = _resolve_output(path, what)
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise TorchRNNError(f"{path}: cannot write {what}: it is a directory")
    if _writes_through(path, what, target, st):
        if not os.access(path, os.W_OK):
            raise TorchRNNError(f"{path}: cannot write {what}: permission denied")
        return
    parent = os.path.dirname(target)
    if create_dir and not os.path.isdir(parent):
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as err:
            raise TorchRNNError(f"cannot create directory {parent} for {what} {path}: "
                                f"{err.strerror or err}") from None
    literal = os.path.dirname(os.fspath(path))    # as the kernel walks it: "gone/.." fails
    if not os.path.isdir(parent) or (literal and not create_dir and not os.path.isdir(literal)):
        missing = parent if not os.path.isdir(parent) else literal
        raise TorchRNNError(f"{path}: cannot write {what}: directory {missing} does not exist")
    if not os.access(parent, os.W_OK):
        raise TorchRNNError(f"{path}: cannot write {what}: directory {parent} is not writable")


def check_name_stem(path, named, hint=""):
    """Refuse a ``path`` that other outputs are ``named`` after (``out_1.txt`` after
    ``out.txt``, a ``.bcl`` table beside its text) unless it is a regular file or a new
    file name: beside a device, a FIFO or /dev/stdout they would be new files in /dev,
    and after a directory (or a name ending in '/') files inside it."""
    check_file_name(path, "output file")
    if os.fspath(path).endswith(("/", os.sep)):
        found = "a name ending in '/'"
    else:
        target, st = _resolve_output(path, "output file")
        if target is None:
            found = "a link through /proc (such as /dev/stdout)"
        elif st is not None and not stat.S_ISREG(st.st_mode):
            found = file_kind(st.st_mode)
        else:
            return
    raise TorchRNNError(f"{path}: {named} would be named after it, so it must be a regular "
                        f"file or a new file name, found {found}{hint}")


def _resolve_output(path, what):
    """``(target, st)``: the real path a write to ``path`` replaces (symlinks followed, so
    the link itself stays a link), or None when the chain passes through /proc (magic
    links such as /dev/stdout, which must be written through); ``st`` is ``os.stat(path)``,
    None when nothing exists there yet."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        st = None
    except OSError as err:
        raise TorchRNNError(f"{path}: cannot write {what}: {err.strerror or err}") from None
    link = os.path.abspath(path)
    for _ in range(40):
        parent = os.path.realpath(os.path.dirname(link))
        link = os.path.join(parent, os.path.basename(link))
        if parent == "/proc" or parent.startswith("/proc/"):
            return None, st
        if not os.path.islink(link):
            return link, st
        try:
            link = os.path.join(parent, os.readlink(link))
        except OSError as err:
            raise TorchRNNError(f"{path}: cannot write {what}: {err.strerror or err}") from None
    raise TorchRNNError(f"{path}: cannot write {what}: {os.strerror(errno.ELOOP)}")


def _writes_through(path, what, target, st):
    """True for outputs opened and written in place: character devices (/dev/null,
    /dev/full, a terminal), FIFOs, and regular files reached through /proc; refuses
    block devices, sockets and other special files."""
    if st is None:
        if target is None:
            raise TorchRNNError(f"{path}: cannot write {what}: no such file")
        return False
    if stat.S_ISREG(st.st_mode):
        return target is None
    if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode):
        return True
    if stat.S_ISDIR(st.st_mode):
        return False
    raise TorchRNNError(f"{path}: cannot write {what}: expected a regular file, a new file "
                        f"name, a character device or a FIFO, found {file_kind(st.st_mode)}")

class _Entry:
    """One output of a group: the user's ``path``, the ``target`` renamed over (None when
    written through), the ``tmp`` file, the open ``file``, and ``what`` it is."""

    def __init__(self, path, target, tmp, what):
        self.path, self.target, self.tmp, self.what = path, target, tmp, what
        self.file = None


class OutputGroup:
    """Output files that appear together or not at all (see :func:`atomic_outputs`).

    ``open(path, mode, what, **kw)`` gives an open temporary file beside ``path``;
    ``temp_path(path, what)`` a temporary file name, for writers that want one (h5py).

    What ``path`` is decides how it is written. A new name or a regular file: a temporary
    file beside it, renamed over it on commit, keeping an existing file's permission bits
    (and owner where allowed); a new file gets the umask's mode. A symlink: the same for its
    final target, so the link stays a link. A character device (/dev/null, /dev/full, a
    terminal), a FIFO (opening it waits for its reader, as a shell's ``>`` does), or a file
    reached through /proc (/dev/stdout, appended to): ``open`` writes to it directly, so
    errors such as a full disk are reported against ``path``; such an output cannot be
    rolled back, but it is flushed before any file of the group is renamed, so a failure
    there still leaves the group's files untouched. ``temp_path`` refuses them (its writers
    need a regular file). Block devices and sockets are refused.
    Before each temporary file is made, stale ones of the same output are removed
    (:func:`remove_stale_temps`); their names carry the writer's PID for that.
    """

    def __init__(self, create_dir=False):
        self.create_dir = create_dir
        self.entries = []           # [_Entry]

    def _new(self, path, what, through_ok):
        check_output_path(path, what, create_dir=self.create_dir)
        target, st = _resolve_output(path, what)
        if _writes_through(path, what, target, st):
            if not through_ok:
                raise TorchRNNError(f"{path}: cannot write {what} there: it needs a regular "
                                    f"file or a new file name, found {file_kind(st.st_mode)}")
            flags = os.O_WRONLY | (os.O_APPEND if stat.S_ISREG(st.st_mode) else 0)
            try:
                fd = os.open(path, flags)
            except OSError as err:
                raise TorchRNNError(f"{path}: cannot write {what}: "
                                    f"{err.strerror or err}") from None
            self.entries.append(_Entry(path, None, None, what))
            return fd
        parent, name = os.path.split(target)
        remove_stale_temps(parent, name)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.{os.getpid()}-", suffix=".tmp",
                                       dir=parent)
        except OSError as err:        # named here: the group's error() names the last output
            raise TorchRNNError(f"{path}: cannot write {what}: {err.strerror or err}") from None
        self.entries.append(_Entry(path, target, tmp, what))
        return fd

    def open(self, path, mode="wb", what="output file", **open_kwargs):
        fd = self._new(path, what, through_ok=True)
        self.entries[-1].file = os.fdopen(fd, mode, **open_kwargs)
        return self.entries[-1].file

    def temp_path(self, path, what="output file"):
        fd = self._new(path, what, through_ok=False)
        os.close(fd)
        return self.entries[-1].tmp

    def error(self, err):
        """The one-line error for an OSError in the body: the writes go to the file
        opened last, so it names that one."""
        reason = err.strerror or err
        if not self.entries:
            return TorchRNNError(f"cannot write output: {reason}")
        entry = self.entries[-1]
        return TorchRNNError(f"{entry.path}: cannot write {entry.what}: {reason}")

    def commit(self):
        """Flush and fsync every file (written-through ones first), then rename them all
        over their targets; if a rename fails, put back the ones already renamed (from
        hard-link backups)."""
        order = sorted(self.entries, key=lambda e: e.target is not None)
        for entry in order:
            try:
                _finish(entry)
            except OSError as err:
                raise TorchRNNError(f"{entry.path}: cannot write {entry.what}: "
                                    f"{err.strerror or err}") from None
        renamed = []                    # (target, backup or None)
        replacing = [e for e in self.entries if e.target is not None]
        try:
            for entry in replacing:
                backup = None
                if len(replacing) > 1 and os.path.exists(entry.target):
                    backup = entry.tmp[:-len(".tmp")] + ".old.tmp"
                    try:
                        os.link(entry.target, backup)   # cheap: no data is copied
                    except OSError:                     # no hard links here (vfat, ...)
                        shutil.copy2(entry.target, backup)
                try:
                    os.replace(entry.tmp, entry.target)
                except OSError as err:
                    raise TorchRNNError(f"{entry.path}: cannot write {entry.what}: "
                                        f"{err.strerror or err}") from None
                renamed.append((entry.target, backup))
        except BaseException:
            for target, backup in reversed(renamed):
                with contextlib.suppress(OSError):
                    os.replace(backup, target) if backup else os.unlink(target)
            raise
        finally:
            for _, backup in renamed:
                if backup:
                    _remove_quietly(backup)
        self.entries = []

    def abort(self):
        """Remove every temporary file; the paths keep what they had."""
        for entry in self.entries:
            if entry.file is not None:
                with contextlib.suppress(OSError):
                    entry.file.close()
            if entry.tmp is not None:
                _remove_quietly(entry.tmp)
                _remove_quietly(entry.tmp[:-len(".tmp")] + ".old.tmp")
        self.entries = []


def _finish(entry):
    """Flush, sync and close one output; give a temporary file its final mode."""
    f = entry.file
    if entry.tmp is None:               # written through: devices and FIFOs cannot fsync
        if f is not None:
            f.flush()
            entry.file = None
            f.close()
        return
    if f is not None:
        f.flush()
        os.fsync(f.fileno())
        f.close()
        entry.file = None
    else:
        with open(entry.tmp, "rb") as done:
            os.fsync(done.fileno())
    _keep_permissions(entry.tmp, entry.target)


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
    was at ``path`` before is left untouched. Yields the open file object. A device or
    FIFO is written directly (see :class:`OutputGroup`).
    """
    with atomic_outputs(create_dir) as group:
        yield group.open(path, mode, what, **open_kwargs)


@contextlib.contextmanager
def atomic_path(path, what="output file", create_dir=False):
    """Like :func:`atomic_output`, for writers that want a file name (h5py, etc.); the
    path must be a regular file or a new name (or a symlink to one)."""
    with atomic_outputs(create_dir) as group:
        yield group.temp_path(path, what)


def _keep_permissions(tmp, target):
    """mkstemp makes 0600 files: give the result the mode (and, where allowed, the owner)
    of the file it replaces, or the usual umask-based mode for a new file."""
    try:
        old = os.stat(target)
    except OSError:
        old = None
    if old is None or not stat.S_ISREG(old.st_mode):
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        return
    os.chmod(tmp, stat.S_IMODE(old.st_mode) & 0o777)
    new = os.stat(tmp)
    if (new.st_uid, new.st_gid) != (old.st_uid, old.st_gid):
        with contextlib.suppress(OSError):
            os.chown(tmp, old.st_uid, old.st_gid)


def _remove_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass
