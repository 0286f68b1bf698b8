"""Small file helpers shared by every stage: clear input errors and atomic outputs."""
import contextlib
import os
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


@contextlib.contextmanager
def atomic_output(path, mode="wb", what="output file", create_dir=False, **open_kwargs):
    """Open a temporary file beside ``path``; rename it over ``path`` only on success.

    If the body raises (or the disk fills), the temporary file is removed and whatever
    was at ``path`` before is left untouched. Yields the open file object.
    """
    check_output_path(path, what, create_dir=create_dir)
    parent = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=parent)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        _keep_permissions(path, tmp)
        os.replace(tmp, path)
    except OSError as err:
        _remove_quietly(tmp)
        raise TorchRNNError(f"{path}: cannot write {what}: {err.strerror or err}") from None
    except BaseException:
        _remove_quietly(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path, what="output file", create_dir=False):
    """Like :func:`atomic_output`, for writers that want a file name (h5py, etc.)."""
    check_output_path(path, what, create_dir=create_dir)
    parent = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=parent)
    os.close(fd)
    try:
        yield tmp
        _keep_permissions(path, tmp)
        os.replace(tmp, path)
    except OSError as err:
        _remove_quietly(tmp)
        raise TorchRNNError(f"{path}: cannot write {what}: {err.strerror or err}") from None
    except BaseException:
        _remove_quietly(tmp)
        raise


def _keep_permissions(path, tmp):
    """mkstemp makes 0600 files; give the result the usual umask-based mode instead."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)


def _remove_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass
