"""Stale temporary files: the dot-named ``.tmp`` files a killed writer of an atomic output
left beside it, recognised by their pattern, their writer's PID and their age, and removed."""
import contextlib
import os
import re
import stat
import time


#: A temporary file of ours whose writer's PID is gone is removed once it is this old.
STALE_TEMP_SECONDS = 300
#: Any temporary file of ours untouched this long is removed (its PID may be reused).
ABANDONED_TEMP_SECONDS = 24 * 3600


def _temp_pattern(name):
    """Our temporary files for output ``name``: ``.<name>.<pid>-<8 chars>.tmp`` (and the
    ``.old.tmp`` backups of a group commit); group 1 is the writer's PID, absent in the
    names of versions before the PID was added (``.<name>.<8 chars>.tmp``)."""
    return re.compile(r"\." + re.escape(name) + r"\.(?:(\d+)-)?[a-z0-9_]{8}(?:\.old)?\.tmp\Z")


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:         # alive, someone else's
        return True
    except (OverflowError, ValueError, OSError):
        return False
    return True


def remove_stale_temps(directory, name, now=None):
    """Remove the temporary files a killed writer of ``name`` left in ``directory``.

    Only names of exactly our pattern (see :func:`_temp_pattern`) are touched, and only
    stale ones: the PID in the name is no live process here and the file has not been
    modified for ``STALE_TEMP_SECONDS`` (the age guards a writer in another PID namespace
    or host sharing the directory, which keeps touching its file), or, whatever the PID
    (it may have been reused after a reboot; old names have none), the file has not been
    modified for ``ABANDONED_TEMP_SECONDS``. Returns the names removed."""
    pattern, now = _temp_pattern(name), time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        if not match:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        age = now - st.st_mtime
        pid = match.group(1)
        dead = pid is not None and int(pid) != os.getpid() and not _pid_alive(int(pid))
        if stat.S_ISREG(st.st_mode) and ((dead and age > STALE_TEMP_SECONDS)
                                         or age > ABANDONED_TEMP_SECONDS):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(entry.name)
    return removed
