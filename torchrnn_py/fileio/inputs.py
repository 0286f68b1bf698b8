"""Input files: refused clearly before they are opened when they are not regular files (a
FIFO blocks ``open``, /dev/zero never ends), read whole, and parsed as strict JSON; plus the
one-line texts for OS errors and bytes that are not UTF-8."""
import json
import os
import stat

from ..errors import TorchRNNError


def describe_os_error(path, err):
    """One line saying what went wrong with ``path``, from an OSError."""
    reason = err.strerror or str(err)
    return f"{path}: {reason}"


def check_input_file(path, what="input file", pipe_ok=False):
    """Raise TorchRNNError unless ``path`` is a readable regular file (symlinks followed);
    checked with ``os.stat`` so that a FIFO is refused without blocking in ``open``.
    ``pipe_ok`` also accepts a FIFO or pipe (``/dev/stdin``, ``<(...)``), for readers that
    stream their input in one pass."""
    if not path:
        raise TorchRNNError(f"no {what} given")
    check_file_name(path, what)
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise TorchRNNError(f"{path}: {what} not found") from None
    except OSError as err:
        raise TorchRNNError(f"{path}: cannot read {what}: {err.strerror or err}") from None
    if stat.S_ISDIR(st.st_mode):
        raise TorchRNNError(f"{path}: expected {_article(what)} {what}, found a directory")
    if not (stat.S_ISREG(st.st_mode) or (pipe_ok and stat.S_ISFIFO(st.st_mode))):
        expected = "a regular file or a pipe" if pipe_ok else "a regular file"
        raise TorchRNNError(f"{path}: expected {expected} ({_article(what)} {what}), "
                            f"found {file_kind(st.st_mode)}")
    if not os.access(path, os.R_OK):
        raise TorchRNNError(f"{path}: {what} is not readable (permission denied)")


def check_file_name(path, what="file"):
    """Refuse a name no system call takes (a NUL byte): one line, not a ValueError."""
    if "\0" in os.fspath(path):
        raise TorchRNNError(f"{os.fspath(path)!r}: not a usable {what} name (it holds a "
                            f"NUL byte)")


def file_kind(mode):
    """What an ``st_mode`` is, in words: 'a character device', 'a FIFO (named pipe)', ..."""
    for test, name in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"


def _article(noun):
    return "an" if noun[:1].lower() in "aeiou" or noun.startswith(("HDF5", "MP3")) else "a"


def read_input_bytes(path, what="input file"):
    """The whole content of a (small) input file, or one clear error naming it."""
    check_input_file(path, what)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        raise TorchRNNError(f"{path}: cannot read {what}: {err.strerror or err}") from None


def read_input_chunks(path, chunk_size, what="input file"):
    """Yield ``path``'s bytes in chunks of ``chunk_size``; an OSError while opening or
    reading is one error naming ``path`` (not the output being written meanwhile)."""
    try:
        with open(path, "rb") as f:
            while True:
                chunk = f.read(chunk_size)
                if not chunk:
                    return
                yield chunk
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
