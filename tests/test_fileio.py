"""fileio: outputs that are devices, FIFOs, symlinks or 0600 files; stale temporary files;
inputs that are not regular files (issue 9, section 6)."""
import errno
import io
import os
import stat
import tempfile
import threading
import time

import pytest

from conftest import GOLDEN
from torchrnn_py import audio, bintoutf8, data, fileio, novel_substrings, vocab
from torchrnn_py import checkpoint as ckpt
from torchrnn_py.errors import TorchRNNError
from torchrnn_py.t7 import read_t7, write_t7

CP100 = GOLDEN / "checkpoints" / "lstm_small_cp_100"


def _is_char_device(path):
    return stat.S_ISCHR(os.stat(path).st_mode)


@pytest.fixture(autouse=True)
def no_renames_into_dev(monkeypatch):
    """Run as root, a regressed writer would rename a regular file over /dev/null or
    /dev/full of the whole machine: make such a rename fail the test instead."""
    real_replace, real_rename = os.replace, os.rename

    def guard(real):
        def checked(src, dst, *args, **kwargs):
            if os.path.realpath(os.fspath(dst)).startswith("/dev/"):
                raise AssertionError(f"would replace the device node {dst}")
            return real(src, dst, *args, **kwargs)
        return checked

    monkeypatch.setattr(os, "replace", guard(real_replace))
    monkeypatch.setattr(os, "rename", guard(real_rename))


# -- outputs ---------------------------------------------------------------------------------

def test_dev_full_output_reports_a_full_disk_and_stays_a_device():
    with pytest.raises(TorchRNNError) as info:
        with fileio.atomic_output("/dev/full", "wb", what="sample file") as f:
            f.write(b"x" * 100)
    message = str(info.value)
    assert message.startswith("/dev/full: cannot write sample file:"), message
    assert os.strerror(28) in message and "\n" not in message
    assert _is_char_device("/dev/full")


def test_t7_writer_to_dev_full_is_one_line_error():
    with pytest.raises(TorchRNNError, match="^/dev/full: .*No space left on device"):
        write_t7("/dev/full", {"a": 1.0})
    assert _is_char_device("/dev/full")


def test_dev_null_output_is_written_through():
    with fileio.atomic_output("/dev/null", "wb") as f:
        f.write(b"discarded")
    assert _is_char_device("/dev/null")


def test_fifo_output_is_written_through(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []

    def reader():
        with open(fifo, "rb") as f:
            received.append(f.read())

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    with fileio.atomic_output(str(fifo), "wb") as f:
        f.write(b"through the pipe")
    thread.join(5)
    assert received == [b"through the pipe"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_symlink_output_replaces_its_target_not_the_link(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "links").mkdir()
    target = tmp_path / "real" / "out.txt"
    target.write_bytes(b"old")
    link = tmp_path / "links" / "out.txt"
    link.symlink_to(os.path.relpath(target, link.parent))
    with fileio.atomic_output(str(link), "wb") as f:
        f.write(b"new")
    assert link.is_symlink() and target.read_bytes() == b"new"
    assert sorted(p.name for p in (tmp_path / "links").iterdir()) == ["out.txt"]
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["out.txt"]


def test_dangling_symlink_output_creates_its_target(tmp_path):
    (tmp_path / "real").mkdir()
    link = tmp_path / "out.txt"
    link.symlink_to(tmp_path / "real" / "new.txt")
    with fileio.atomic_output(str(link), "wb") as f:
        f.write(b"made")
    assert link.is_symlink() and (tmp_path / "real" / "new.txt").read_bytes() == b"made"


def test_output_through_proc_appends_to_the_open_file_in_place(tmp_path):
    """Like ``-output_file /dev/stdout`` with stdout redirected to a file: the file that the
    descriptor points to gets the bytes (after what is there); it is not replaced."""
    log = tmp_path / "stdout.txt"
    with open(log, "wb") as held:
        held.write(b"earlier line\n")
        held.flush()
        inode = os.fstat(held.fileno()).st_ino
        link = tmp_path / "stdout"                  # as /dev/stdout -> /proc/self/fd/1
        link.symlink_to(f"/proc/self/fd/{held.fileno()}")
        with fileio.atomic_output(str(link), "wb") as f:
            f.write(b"sample\n")
    assert log.read_bytes() == b"earlier line\nsample\n"
    assert os.stat(log).st_ino == inode and link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stdout", "stdout.txt"]


def test_a_missing_folder_before_dotdot_is_missing(tmp_path):
    """``gone/../out.txt`` fails in the shell (the kernel walks ``gone`` first): refused,
    not written as ``./out.txt``."""
    path = tmp_path / "gone" / ".." / "out.txt"
    with pytest.raises(TorchRNNError, match="directory .*gone.* does not exist"):
        fileio.check_output_path(str(path), "sample file")
    assert not (tmp_path / "out.txt").exists()
    (tmp_path / "here").mkdir()
    fileio.check_output_path(str(tmp_path / "here" / ".." / "out.txt"), "sample file")


def test_existing_output_keeps_its_permission_bits(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_bytes(b"old")
    os.chmod(path, 0o600)
    with fileio.atomic_output(str(path), "wb") as f:
        f.write(b"new")
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    os.chmod(path, 0o640)
    with fileio.atomic_outputs() as group:          # the group commit too
        group.open(str(path)).write(b"newer")
        group.open(str(tmp_path / "other.txt")).write(b"x")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_new_output_gets_the_umask_mode(tmp_path):
    old = os.umask(0o027)
    try:
        with fileio.atomic_output(str(tmp_path / "new.txt"), "wb") as f:
            f.write(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "new.txt").st_mode) == 0o640


def test_named_temp_writers_refuse_a_device():
    with pytest.raises(TorchRNNError, match="^/dev/null: cannot write PNG file there: it needs "
                                            "a regular file .*found a character device$"):
        with fileio.atomic_path("/dev/null", "PNG file"):
            pass


def test_group_with_a_full_device_leaves_its_regular_files_alone(tmp_path):
    path = tmp_path / "table.bcl"
    path.write_bytes(b"old")
    with pytest.raises(TorchRNNError, match="^/dev/full: cannot write text output: No space"):
        with fileio.atomic_outputs() as group:
            group.open("/dev/full", what="text output").write(b"t")
            group.open(str(path), what="table").write(b"new")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.bcl"]


def test_socket_output_is_refused(tmp_path):
    import socket
    path = tmp_path / "sock"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(path))
        with pytest.raises(TorchRNNError, match="found a socket$"):
            fileio.check_output_path(str(path))
    finally:
        server.close()


# -- stale temporary files -------------------------------------------------------------------

def _dead_pid():
    with open("/proc/sys/kernel/pid_max") as f:
        return int(f.read()) + 1                    # no process can have it


def _age(path, seconds):
    when = time.time() - seconds
    os.utime(path, (when, when))


def test_stale_temp_files_of_the_same_output_are_removed(tmp_path):
    dead, alive = _dead_pid(), os.getpid()
    names = {
        f".c_10.t7.{dead}-abcdefgh.tmp": (600, True),        # dead writer, old: ours
        f".c_10.t7.{dead}-abcdefgh.old.tmp": (600, True),    # its group backup
        ".c_10.t7.k3j_9x0q.tmp": (2 * 86400, True),          # before PIDs, abandoned
        f".c_10.t7.{dead}-zzzzzzzz.tmp": (10, False),        # dead writer, just now
        f".c_10.t7.{alive}-abcdefgh.tmp": (600, False),      # a live writer
        ".c_10.t7.k3j_9x0q.tmp.keep": (2 * 86400, False),    # not our pattern
        f".c_100.t7.{dead}-abcdefgh.tmp": (600, False),      # another output
        f"c_10.t7.{dead}-abcdefgh.tmp": (600, False),        # not hidden
    }
    for name, (age, _) in names.items():
        (tmp_path / name).write_bytes(b"partial")
        _age(tmp_path / name, age)
    with fileio.atomic_output(str(tmp_path / "c_10.t7"), "wb") as f:
        f.write(b"checkpoint")
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {"c_10.t7"} | {n for n, (_, gone) in names.items() if not gone}


def test_temp_file_names_carry_the_writer_pid(tmp_path):
    with fileio.atomic_outputs() as group:
        tmp = group.temp_path(str(tmp_path / "data.h5"))
        assert os.path.basename(tmp).startswith(f".data.h5.{os.getpid()}-")
        assert fileio._temp_pattern("data.h5").match(os.path.basename(tmp))
        open(tmp, "wb").close()


# -- inputs ----------------------------------------------------------------------------------

def _in_time(function, *args):
    """Call ``function`` in a thread; a FIFO opened for reading would block it forever."""
    outcome = []

    def body():
        try:
            function(*args)
            outcome.append(None)
        except TorchRNNError as err:
            outcome.append(err)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(5)
    assert outcome, f"{function.__name__} blocked"
    return outcome[0]


@pytest.mark.parametrize("reader", [
    ckpt.load_checkpoint, ckpt.read_checkpoint_json, read_t7, audio.read_wav_info,
    bintoutf8.read_table, bintoutf8.build_table_from_file,
    lambda path: novel_substrings.read_text(path, "training text"),
    lambda path: fileio.read_input_bytes(path, "vocabulary file"),
    vocab.read_vocab, data.read_splits,
], ids=["checkpoint", "json", "t7", "wav", "bcl", "bintoutf8", "novel", "bytes", "input_json",
        "input_h5"])
def test_readers_refuse_devices_and_fifos_without_blocking(reader, tmp_path):
    err = _in_time(reader, "/dev/zero")
    assert isinstance(err, TorchRNNError)
    assert str(err).startswith("/dev/zero: expected a regular file (")
    assert str(err).endswith("), found a character device")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    err = _in_time(reader, str(fifo))
    assert isinstance(err, TorchRNNError) and str(err).endswith("found a FIFO (named pipe)")


def test_checkpoint_message_names_what_was_expected():
    err = _in_time(ckpt.load_checkpoint, "/dev/zero")
    assert str(err) == "/dev/zero: expected a regular file (a checkpoint), found a character device"


def test_symlink_to_a_regular_input_is_fine(tmp_path):
    link = tmp_path / "cp.t7"
    link.symlink_to(str(CP100) + ".t7")
    assert ckpt.load_checkpoint(str(link))["i"] == 100


def test_a_nul_byte_in_a_file_name_is_one_line(tmp_path):
    """A library caller's name with a NUL byte (no command line can hold one): a
    TorchRNNError naming it, not os.stat's ValueError."""
    bad = str(tmp_path / "a\0b.t7")
    for check in (lambda: fileio.check_input_file(bad, "checkpoint"),
                  lambda: fileio.check_output_path(bad, "checkpoint"),
                  lambda: fileio.check_distinct(input_file=str(tmp_path / "x"), output=bad)):
        with pytest.raises(TorchRNNError, match="NUL byte"):
            check()


def test_a_temp_file_that_cannot_be_made_names_its_own_output(tmp_path, monkeypatch):
    """mkstemp failing for the second file of a group names that file, not the first."""
    first, second = tmp_path / "a.h5", tmp_path / "b.json"

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(TorchRNNError) as caught:
        with fileio.atomic_outputs() as group:
            group.open(str(first)).write(b"x")
            monkeypatch.setattr(tempfile, "mkstemp", full)
            group.open(str(second))
    assert str(caught.value) == f"{second}: cannot write output file: No space left on device"
    assert not first.exists()


# -- stdout against the inputs; names that other outputs are named after -------------------

def test_a_stdout_that_is_an_input_is_refused_by_inode(tmp_path):
    data = tmp_path / "data.h5"
    data.write_bytes(b"precious")
    os.link(data, tmp_path / "hard_link.h5")                    # another name, same file
    for mode in ("r+b", "ab"):                                  # 1<> data, >> data
        with open(tmp_path / "hard_link.h5", mode) as stdout:
            with pytest.raises(TorchRNNError) as caught:
                fileio.check_stdout_distinct(stdout, input_json=None, input_h5=str(data))
    assert str(caught.value) == (f"{data}: stdout is this input h5, and the output would be "
                                 f"written into it; expected stdout to be another file, a "
                                 f"pipe or a terminal")
    assert data.read_bytes() == b"precious"
    other = tmp_path / "log.txt"
    with open(other, "ab") as stdout:                            # another regular file: fine
        fileio.check_stdout_distinct(stdout, input_h5=str(data), missing=str(tmp_path / "x"))


def test_a_stdout_without_a_file_behind_it_passes(tmp_path):
    data = tmp_path / "data.h5"
    data.write_bytes(b"x")
    read_end, write_end = os.pipe()
    try:
        with open(write_end, "wb", closefd=False) as pipe:
            fileio.check_stdout_distinct(pipe, input_h5=str(data))
    finally:
        os.close(read_end)
        os.close(write_end)
    fileio.check_stdout_distinct(io.BytesIO(), input_h5=str(data))     # no descriptor
    with open(os.devnull, "wb") as null:                                # not a regular file
        fileio.check_stdout_distinct(null, null_device=os.devnull)


@pytest.mark.parametrize("kind", ["device", "fifo", "directory", "slash", "proc"])
def test_name_stems_must_be_regular_files_or_new_names(kind, tmp_path):
    made = {"device": ("/dev/null", "a character device"),
            "directory": (str(tmp_path), "a directory"),
            "slash": (f"{tmp_path}/", "a name ending in '/'"),
            "proc": ("/dev/stdout", "a link through /proc (such as /dev/stdout)")}
    if kind == "fifo":
        os.mkfifo(tmp_path / "fifo")
        made["fifo"] = (str(tmp_path / "fifo"), "a FIFO (named pipe)")
    path, found = made[kind]
    with pytest.raises(TorchRNNError) as caught:
        fileio.check_name_stem(path, "its twins", "; give another")
    assert str(caught.value) == (f"{path}: its twins would be named after it, so it must be "
                                 f"a regular file or a new file name, found {found}; give "
                                 f"another")


def test_name_stems_that_are_files_or_new_names_pass(tmp_path):
    (tmp_path / "out.txt").write_bytes(b"")
    os.symlink(tmp_path / "out.txt", tmp_path / "link.txt")
    for name in ("out.txt", "new.txt", "link.txt"):
        fileio.check_name_stem(str(tmp_path / name), "its twins")
