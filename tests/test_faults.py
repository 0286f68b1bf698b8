"""Faults while writing: a checkpoint write interrupted at any point leaves the previous
checkpoint intact (and no temporary files); a full disk is one clear error, never a corrupt
file; the same for preprocess and bintoutf8 outputs.

Faults are injected into the ``os`` functions that :mod:`torchrnn_py.fileio.outputs` uses
(the temporary file's writes, ``fsync``, ``chmod``, ``replace``), so every step of
``atomic_output`` is hit, for the checkpoint's JSON and for its ``.t7``. A real crash
(the process killed in the middle of a write) is simulated in a child process.
"""
import contextlib
import errno
import io
import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import GOLDEN, make_tiny_h5
from torchrnn_py.cli import bintoutf8 as bintoutf8_cli, preprocess as preprocess_cli, train as train_cli
from torchrnn_py import bintoutf8, fileio, preprocess
from torchrnn_py import checkpoint as ckpt
from torchrnn_py import train as train_mod
from torchrnn_py.errors import TorchRNNError

CP100 = GOLDEN / "checkpoints" / "lstm_small_cp_100"
ENOSPC_TEXT = os.strerror(errno.ENOSPC)          # "No space left on device"


def enospc():
    return OSError(errno.ENOSPC, ENOSPC_TEXT)


class FaultyOs:
    """Stands in for ``os`` inside fileio: the operation ``op`` ('write', 'fsync', 'chmod'
    or 'replace') on the file named ``target`` (its temporary file) raises ``fault()``;
    for 'write' after ``after_bytes`` bytes (or characters) went through."""

    def __init__(self, target, op, fault=enospc, after_bytes=0):
        self.target, self.op, self.fault, self.after = target, op, fault, after_bytes
        self.fired = False

    def __getattr__(self, name):
        return getattr(os, name)

    def _hits(self, path):
        base = os.path.basename(os.fspath(path))
        return base == self.target or base.startswith("." + self.target + ".")

    def _fire(self):
        self.fired = True
        raise self.fault()

    def fdopen(self, fd, *args, **kwargs):
        f = os.fdopen(fd, *args, **kwargs)
        if self.op == "write" and self._hits(os.readlink(f"/proc/self/fd/{fd}")):
            return _FailingFile(f, self)
        return f

    def fsync(self, fd):
        if self.op == "fsync" and self._hits(os.readlink(f"/proc/self/fd/{fd}")):
            self._fire()
        return os.fsync(fd)

    def chmod(self, path, mode, *args, **kwargs):
        if self.op == "chmod" and self._hits(path):
            self._fire()
        return os.chmod(path, mode, *args, **kwargs)

    def replace(self, src, dst, *args, **kwargs):
        if self.op == "replace" and self._hits(dst):
            self._fire()
        return os.replace(src, dst, *args, **kwargs)


class _FailingFile:
    """A file object whose writes stop with the fault once ``after`` units went through."""

    def __init__(self, f, injector):
        self._f, self._injector, self._written = f, injector, 0

    def write(self, data):
        room = self._injector.after - self._written
        if len(data) <= room:
            self._written += len(data)
            return self._f.write(data)
        self._f.write(data[:max(room, 0)])
        self._written = self._injector.after
        self._injector._fire()

    def __enter__(self):
        self._f.__enter__()
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self._f, name)


@pytest.fixture(scope="module")
def golden_checkpoint():
    return ckpt.load_checkpoint(str(CP100) + ".t7")


@pytest.fixture
def existing(tmp_path, golden_checkpoint):
    """A directory holding cp.t7 / cp.json (the golden cp_100, as we write it), and the
    new checkpoint (i = 101) that is about to overwrite them."""
    path = tmp_path / "cp.t7"
    ckpt.save_checkpoint(str(path), golden_checkpoint)
    new = dict(golden_checkpoint, i=101,
               train_loss_history=golden_checkpoint["train_loss_history"] + [1.5])
    return {"dir": tmp_path, "t7": path, "json": tmp_path / "cp.json",
            "old_t7": path.read_bytes(), "old_json": (tmp_path / "cp.json").read_bytes(),
            "new": new}


def _sizes(existing):
    """How many units (characters for the JSON, bytes for the .t7) each file's writes take."""
    json_chars = len(ckpt.cjson_dumps({k: v for k, v in existing["new"].items()
                                       if k != "model"}))
    return {"cp.json": json_chars, "cp.t7": len(existing["old_t7"])}


def _points():
    """(file, operation, where in the write) for every step of both atomic writes."""
    points = []
    for target in ("cp.json", "cp.t7"):
        for where in ("start", "1", "middle", "last"):
            points.append((target, "write", where))
        for op in ("fsync", "chmod", "replace"):
            points.append((target, op, None))
    return points


def _after(existing, target, where):
    total = _sizes(existing)[target]
    return {"start": 0, "1": 1, "middle": total // 2, "last": total - 1, None: 0}[where]


def _save_with_fault(existing, monkeypatch, target, op, where, fault):
    injector = FaultyOs(target, op, fault, _after(existing, target, where))
    monkeypatch.setattr(fileio.outputs, "os", injector)
    try:
        ckpt.save_checkpoint(str(existing["t7"]), existing["new"])
    finally:
        monkeypatch.setattr(fileio.outputs, "os", os)
    return injector


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name not in ("cp.t7", "cp.json"))


FAULT_POINTS = [pytest.param(*p, id="-".join(str(x) for x in p if x)) for p in _points()]


@pytest.mark.parametrize("target,op,where", FAULT_POINTS)
@pytest.mark.parametrize("fault", ["ENOSPC", "interrupt"])
def test_interrupted_checkpoint_write_keeps_the_old_checkpoint(existing, monkeypatch, target,
                                                               op, where, fault):
    make = enospc if fault == "ENOSPC" else KeyboardInterrupt
    expected = TorchRNNError if fault == "ENOSPC" else KeyboardInterrupt
    with pytest.raises(expected) as err:
        _save_with_fault(existing, monkeypatch, target, op, where, make)
    assert _leftovers(existing["dir"]) == []                   # no temporary files
    if fault == "ENOSPC":
        message = str(err.value)
        assert "\n" not in message and ENOSPC_TEXT in message
        assert message.startswith(str(existing["dir"] / target))
    assert existing["t7"].read_bytes() == existing["old_t7"]
    assert existing["json"].read_bytes() == existing["old_json"]
    assert ckpt.load_checkpoint(str(existing["t7"]))["i"] == 100


@pytest.mark.parametrize("target,op,where", [p for p in _points() if p[0] == "cp.t7"])
def test_fault_in_t7_write_keeps_the_old_t7_and_a_whole_json(existing, monkeypatch, target,
                                                             op, where):
    """What holds today for faults during the .t7 write: the .t7 is the old one, intact and
    loadable, and the .json is a complete file (the old or the new), never a torn one."""
    with pytest.raises(TorchRNNError, match=ENOSPC_TEXT):
        _save_with_fault(existing, monkeypatch, target, op, where, enospc)
    assert _leftovers(existing["dir"]) == []
    assert existing["t7"].read_bytes() == existing["old_t7"]
    assert ckpt.load_checkpoint(str(existing["t7"]))["i"] == 100
    assert ckpt.read_checkpoint_json(str(existing["json"]))["i"] in (100, 101)


def test_injector_hits_every_point(existing, monkeypatch):
    """The fault points are real: each one fires (a point that never fired would make the
    tests above vacuous), and without faults the overwrite goes through."""
    for target, op, where in _points():
        injector = FaultyOs(target, op, enospc, _after(existing, target, where))
        monkeypatch.setattr(fileio.outputs, "os", injector)
        with contextlib.suppress(TorchRNNError):
            ckpt.save_checkpoint(str(existing["t7"]), existing["new"])
        monkeypatch.setattr(fileio.outputs, "os", os)
        assert injector.fired, (target, op, where)
        ckpt.save_checkpoint(str(existing["t7"]), dict(existing["new"], i=100))   # reset
    ckpt.save_checkpoint(str(existing["t7"]), existing["new"])
    assert ckpt.load_checkpoint(str(existing["t7"]))["i"] == 101
    assert ckpt.read_checkpoint_json(str(existing["json"]))["i"] == 101
    assert _leftovers(existing["dir"]) == []


_KILL_SCRIPT = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {tests!r})
    import torch
    torch.set_num_threads(1)
    from test_faults import FaultyOs
    from torchrnn_py import checkpoint as ckpt, fileio
    directory, points = sys.argv[1], sys.argv[2:]
    new = ckpt.load_checkpoint(os.path.join(directory, "cp.t7"))
    new["i"] = 101
    for n, point in enumerate(points):
        target, op, after = point.split(":")
        pid = os.fork()
        if pid == 0:                     # the child dies in the middle of the write
            def die():
                os._exit(9)
            fileio.outputs.os = FaultyOs(target, op, die, int(after))
            ckpt.save_checkpoint(os.path.join(directory, "cp.t7"), new)
            os._exit(0)                  # the fault never fired
        _, status = os.waitpid(pid, 0)
        same = [open(os.path.join(directory, name), "rb").read() ==
                open(os.path.join(directory, "old_" + name), "rb").read()
                for name in ("cp.json", "cp.t7")]
        print(point, os.waitstatus_to_exitcode(status), *same, flush=True)
""")


def test_killed_in_the_middle_of_a_write_loses_nothing(existing):
    """A process killed (os._exit) while writing the JSON or the .t7: the old .t7 is always
    intact, and so is the old JSON unless the kill falls between the two renames. Only dot-named
    temporary files are left (nothing can remove them from a dead process), and the next
    save works."""
    json_middle = _sizes(existing)["cp.json"] // 2
    t7_middle = len(existing["old_t7"]) // 2
    points = [f"cp.json:write:{json_middle}", "cp.json:fsync:0", "cp.json:replace:0",
              f"cp.t7:write:{t7_middle}", "cp.t7:fsync:0", "cp.t7:replace:0"]
    for name in ("cp.json", "cp.t7"):
        shutil.copy(existing["dir"] / name, existing["dir"] / ("old_" + name))
    script = _KILL_SCRIPT.format(tests=os.path.dirname(__file__))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", script, str(existing["dir"])] + points,
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    assert [line[:2] for line in lines] == [[p, "9"] for p in points]     # each one killed
    for point, _, json_same, t7_same in lines:
        assert t7_same == "True", point
        # both files are written and synced before either is renamed: only a kill
        # between the two renames (the .t7's) can find the JSON already replaced
        if point != "cp.t7:replace:0":
            assert json_same == "True", point
    for name in ("old_cp.json", "old_cp.t7"):
        os.unlink(existing["dir"] / name)
    assert existing["t7"].read_bytes() == existing["old_t7"]
    assert ckpt.load_checkpoint(str(existing["t7"]))["i"] == 100
    # the last kill fell between the two renames: the JSON may already be the new one
    assert ckpt.read_checkpoint_json(str(existing["json"]))["i"] in (100, 101)
    left = _leftovers(existing["dir"])
    assert all(name.startswith(".cp.") and name.endswith(".tmp") for name in left), left
    ckpt.save_checkpoint(str(existing["t7"]), existing["new"])
    assert ckpt.load_checkpoint(str(existing["t7"]))["i"] == 101
    # the killed writers' temporary files are removed by a later save once they are stale
    # (their PIDs are gone; older than fileio.STALE_TEMP_SECONDS), not before
    assert left and _leftovers(existing["dir"]) == left
    when = time.time() - fileio.STALE_TEMP_SECONDS - 60
    for name in left:
        os.utime(existing["dir"] / name, (when, when))
    ckpt.save_checkpoint(str(existing["t7"]), existing["new"])
    assert _leftovers(existing["dir"]) == []


# -- a full disk through the commands --------------------------------------------------------

def _run(main, argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def tiny_h5(tmp_path_factory):
    return str(make_tiny_h5(tmp_path_factory.mktemp("faults_data")))


@pytest.mark.parametrize("target", ["cp_6.json", "cp_6.t7"])
def test_full_disk_during_training_is_one_line(tiny_h5, tmp_path, monkeypatch, target):
    cv = tmp_path / "cv"
    argv = ["-input_h5", tiny_h5, "-input_json", str(GOLDEN / "shakespeare200k.json"),
            "-batch_size", "2", "-seq_length", "50", "-rnn_size", "8", "-wordvec_size", "4",
            "-num_layers", "1", "-max_epochs", "1", "-gpu", "-1", "-seed", "1",
            "-checkpoint_every", "3", "-checkpoint_name", str(cv / "cp")]
    injector = FaultyOs(target, "write", enospc, 100)
    monkeypatch.setattr(fileio.outputs, "os", injector)
    rc, out, err = _run(train_cli.main, argv)
    monkeypatch.setattr(fileio.outputs, "os", os)
    assert injector.fired and rc == 1
    assert err.splitlines() == [f"wrote {cv / 'cp_3'}.t7", f"wrote {cv / 'cp_3'}.json",
                                f"torchrnn-train: error: {cv / target}: cannot write "
                                f"{'checkpoint JSON' if target.endswith('json') else 'Torch7 file'}"
                                f": {ENOSPC_TEXT}"]
    assert "i = 6 /" in out and "i = 7 /" not in out
    assert not (cv / "cp_6.t7").exists()
    names = sorted(p.name for p in cv.iterdir())
    assert not [n for n in names if n.endswith(".tmp")]
    assert {"cp_3.json", "cp_3.t7"} <= set(names)
    assert ckpt.load_checkpoint(str(cv / "cp_3.t7"))["i"] == 3
    assert ckpt.read_checkpoint_json(str(cv / "cp_3.json"))["i"] == 3


def _preprocess_argv(tmp_path, text):
    src = tmp_path / "input.txt"
    src.write_text(text, encoding="utf-8")
    return ["--input_txt", str(src), "--output_h5", str(tmp_path / "out.h5"),
            "--output_json", str(tmp_path / "out.json"), "--quiet"]


@pytest.mark.parametrize("where", ["json", "h5"])
def test_full_disk_in_preprocess_keeps_old_outputs(tmp_path, monkeypatch, where):
    assert _run(preprocess_cli.main, _preprocess_argv(tmp_path, "hello world\n" * 50))[0] == 0
    old_h5, old_json = (tmp_path / "out.h5").read_bytes(), (tmp_path / "out.json").read_bytes()
    if where == "json":
        monkeypatch.setattr(fileio.outputs, "os", FaultyOs("out.json", "write", enospc, 10))
    else:
        def full_disk(*args, **kwargs):       # what h5py raises when its write fails
            raise enospc()
        monkeypatch.setattr(preprocess, "_write_ids", full_disk)
    rc, out, err = _run(preprocess_cli.main, _preprocess_argv(tmp_path, "other text, new vocab\n"))
    monkeypatch.setattr(fileio.outputs, "os", os)
    assert rc == 1
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("torchrnn-preprocess: error: "), err
    assert ENOSPC_TEXT in lines[0]
    if where == "json":
        assert str(tmp_path / "out.json") in lines[0]
    assert (tmp_path / "out.h5").read_bytes() == old_h5
    assert (tmp_path / "out.json").read_bytes() == old_json
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.txt", "out.h5", "out.json"]


def test_full_disk_while_writing_hdf5_names_the_hdf5_file(tmp_path, monkeypatch):
    assert _run(preprocess_cli.main, _preprocess_argv(tmp_path, "hello world\n" * 50))[0] == 0

    def full_disk(*args, **kwargs):
        raise enospc()
    monkeypatch.setattr(preprocess, "_write_ids", full_disk)
    rc, out, err = _run(preprocess_cli.main, _preprocess_argv(tmp_path, "other text\n"))
    assert rc == 1 and str(tmp_path / "out.h5") in err, err


def test_full_disk_in_bintoutf8_keeps_old_outputs(tmp_path, monkeypatch):
    raw = tmp_path / "voice.raw"
    raw.write_bytes(bytes(range(256)) * 40)
    assert _run(bintoutf8_cli.main_encode, [str(raw)])[0] == 0
    text, table = tmp_path / "voice.raw.txt", tmp_path / "voice.raw.bcl"
    old_text, old_table = text.read_bytes(), table.read_bytes()
    raw.write_bytes(bytes(range(255, -1, -1)) * 40)          # a new table, a new text
    injector = FaultyOs("voice.raw.txt", "write", enospc, 5000)
    monkeypatch.setattr(fileio.outputs, "os", injector)
    rc, out, err = _run(bintoutf8_cli.main_encode, [str(raw)])
    monkeypatch.setattr(fileio.outputs, "os", os)
    assert injector.fired and rc == 1
    lines = err.splitlines()
    assert len(lines) == 1 and str(text) in lines[0] and ENOSPC_TEXT in lines[0], err
    assert text.read_bytes() == old_text and table.read_bytes() == old_table
    assert sorted(p.name for p in tmp_path.iterdir()) == ["voice.raw", "voice.raw.bcl",
                                                          "voice.raw.txt"]
