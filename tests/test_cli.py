"""The one table of commands (torchrnn_py/cli/__init__.py): setup.cfg's console scripts and
``python -m torchrnn_py <command>`` come from it, it resolves its targets only when a command
runs, and the library modules never import the command layer."""
import ast
import configparser
import importlib
import io
import os
import pathlib
import subprocess
import sys

import pytest

from torchrnn_py import cli

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_setup_cfg_console_scripts_are_the_table():
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    declared = [line.strip() for line in
                config["options.entry_points"]["console_scripts"].strip().splitlines()]
    assert declared == cli.console_scripts()
    assert len(set(declared)) == len(cli.COMMANDS)          # no script named twice


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_command_answers_help_under_its_script_name(command, capsys):
    script, _ = cli.COMMANDS[command]
    try:
        status = cli.main([command, "-h"])
    except SystemExit as stop:
        status = stop.code
    assert status == 0
    assert f"sage: {script} " in capsys.readouterr().out      # usage: / Usage:


def test_dispatcher_refuses_an_unknown_command_in_one_line(capsys):
    assert cli.main(["trian"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("torchrnn_py: error: unknown command 'trian' (one of: preprocess, ")
    assert cli.main([]) == 2                                 # a usage error: on stderr
    out, err = capsys.readouterr()
    assert out == "" and "commands: " + ", ".join(cli.COMMANDS) in err
    assert cli.main(["-h"]) == 0
    assert "commands: " + ", ".join(cli.COMMANDS) in capsys.readouterr().out


def test_python_dash_m_runs_the_table():
    proc = subprocess.run([sys.executable, "-m", "torchrnn_py", "novel_substrings", "-h"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: torchrnn-novel-substrings")


def test_importing_the_table_loads_no_command_and_not_torch():
    code = ("import sys, torchrnn_py.cli, torchrnn_py.__main__\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'\n"
            "             or m.startswith('torchrnn_py.')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, check=True)
    assert proc.stdout.strip() == ("['torchrnn_py.__main__', 'torchrnn_py.cli', "
                                   "'torchrnn_py.cmdline', 'torchrnn_py.errors']")


def test_the_library_never_imports_the_cli():
    """No module of the library imports torchrnn_py.cli, not even inside a function (no
    import runs back up); only the ``__main__.py`` entry points of ``python -m
    torchrnn_py.<stage>`` stand above the command layer and run it."""
    for path in sorted((REPO / "torchrnn_py").rglob("*.py")):
        if path.name == "__main__.py" or "cli" in path.relative_to(REPO / "torchrnn_py").parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("cli"), path.name
                assert "cli" not in [a.name for a in node.names], path.name
            if isinstance(node, ast.Import):
                assert not any(".cli" in a.name for a in node.names), path.name
    for stage in ("preprocess", "sample", "evaluate", "novel_substrings", "plot", "train",
                  "audio"):
        entry = REPO / "torchrnn_py" / stage / "__main__.py"
        assert f"from ..cli.{stage} import main" in entry.read_text(), stage
        assert cli.resolve({"evaluate": "eval"}.get(stage, stage)) is \
            importlib.import_module(f"torchrnn_py.cli.{stage}").main


def test_every_console_script_runs_its_command(monkeypatch, capsys):
    """What pip's generated script does: import the function setup.cfg names, call it."""
    for line in cli.console_scripts():
        script, target = (part.strip() for part in line.split("="))
        module, function = target.split(":")
        monkeypatch.setattr(sys, "argv", [script, "-h"])
        try:
            status = getattr(importlib.import_module(module), function)()
        except SystemExit as stop:
            status = stop.code
        assert status == 0 and f"sage: {script} " in capsys.readouterr().out, script
    from torchrnn_py.cli import scripts
    with pytest.raises(AttributeError):
        scripts.trian


# In a fresh interpreter, Ctrl-C arrives while torch is being imported (simulated by an
# import hook); then the console script is called as pip's wrapper calls it.
CTRL_C_DURING_IMPORT = """
import sys
class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            raise KeyboardInterrupt
sys.meta_path.insert(0, CtrlC())
from torchrnn_py.cli.scripts import {function}
sys.argv = ["{script}"]
sys.exit({function}())
"""


# A real SIGINT arrives while torch is being imported: it is held until the import is done
# (torch is then whole), and the command does not run.
SIGINT_DURING_IMPORT = """
import os, signal, sys
class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and "torch" not in sys.modules:
            os.kill(os.getpid(), signal.SIGINT)
        return None
sys.meta_path.insert(0, CtrlC())
from torchrnn_py.cli.scripts import train
sys.argv = ["torchrnn-train", "-input_h5", "absent.h5"]
status = train()
print(hasattr(sys.modules.get("torch"), "nn"), signal.getsignal(signal.SIGINT) is
      signal.default_int_handler)
sys.exit(status)
"""


def test_a_signal_while_torch_loads_waits_for_the_import_then_stops():
    proc = subprocess.run([sys.executable, "-c", SIGINT_DURING_IMPORT], capture_output=True,
                          text=True, cwd=REPO)
    assert (proc.returncode, proc.stderr, proc.stdout) == \
        (130, "torchrnn-train: interrupted\n", "True True\n")


@pytest.mark.parametrize("command", ["train", "charrnn-sample"])
def test_ctrl_c_while_torch_loads_is_one_line(command):
    script = cli.COMMANDS[command][0]
    code = CTRL_C_DURING_IMPORT.format(function=cli.script_function(command), script=script)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO)
    assert (proc.returncode, proc.stderr, proc.stdout) == (130, f"{script}: interrupted\n", "")


@pytest.mark.parametrize("command", [[], ["plot"], ["bintoutf8"], ["audio", "encode"],
                                     ["train"], ["charrnn-sample"]])
def test_help_that_cannot_be_written_is_one_line(command):
    """-h to a full disk: one line and exit 1 (argparse's own help ignored the error and
    exited 0; the dispatcher's help was a traceback)."""
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "torchrnn_py"] + command + ["-h"],
                              stdout=full, stderr=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "No space left on device" in proc.stderr and "Traceback" not in proc.stderr


def test_with_stderr_closed_warnings_do_not_land_on_stdout():
    """2>&-: the warning and "wrote" lines go nowhere, not among stdout's lines."""
    from conftest import GOLDEN
    proc = subprocess.run([sys.executable, "-m", "torchrnn_py", "sample", "-checkpoint",
                           str(GOLDEN / "checkpoints" / "lstm_small_cp_159.t7"), "-gpu", "7",
                           "-length", "20", "-seed", "1", "-precision", "tf32"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                          cwd=REPO, preexec_fn=lambda: os.close(2))
    assert proc.returncode == 0
    assert "warning" not in proc.stdout and len(proc.stdout) == 21     # 20 chars, newline
# -- a stdout that is one of the command's inputs (`cmd 1<> input`, `cmd >> input`) ---------

FIXTURES = REPO / "tests" / "fixtures"
CP = FIXTURES / "golden" / "checkpoints" / "lstm_small_cp_159.t7"
CHARRNN_CP = FIXTURES / "charrnn" / "lstm_2x64.t7"
TEXT = (FIXTURES / "golden" / "shakespeare200k.txt").read_bytes()[:3000]


def _copy(tmp_path, source, name):
    path = tmp_path / name
    path.write_bytes(source.read_bytes() if isinstance(source, pathlib.Path) else source)
    return path


def _tiny_data(tmp_path):
    """A copy of tiny HDF5 data and its vocabulary (the checkpoint's own)."""
    from conftest import make_tiny_h5
    h5 = make_tiny_h5(tmp_path)
    return h5, _copy(tmp_path, FIXTURES / "golden" / "shakespeare200k.json", "tiny.json")


def _sample(tmp_path):
    cp = _copy(tmp_path, CP, "cp.t7")
    return cp, ["-checkpoint", cp, "-gpu", "-1", "-length", 20]


def _eval(tmp_path):          # stdout is the data: found only once the checkpoint is read
    h5, json_path = _tiny_data(tmp_path)
    cp = _copy(tmp_path, CP, "cp.t7")
    return h5, ["-checkpoint", cp, "-gpu", "-1", "-input_h5", h5, "-input_json", json_path]


def _train(tmp_path):
    h5, json_path = _tiny_data(tmp_path)
    return json_path, ["-input_h5", h5, "-input_json", json_path, "-rnn_size", 8,
                       "-wordvec_size", 4, "-num_layers", 1, "-batch_size", 2,
                       "-seq_length", 10, "-max_epochs", 1, "-gpu", "-1",
                       "-checkpoint_name", tmp_path / "cv" / "cp"]


def _preprocess(tmp_path):
    text = _copy(tmp_path, TEXT, "input.txt")
    return text, ["--input_txt", text, "--output_h5", tmp_path / "o.h5",
                  "--output_json", tmp_path / "o.json"]


def _charrnn_sample(tmp_path):
    cp = _copy(tmp_path, CHARRNN_CP, "lm.t7")
    return cp, [cp, "-gpuid", "-1", "-length", 20, "-verbose", 0]


def _charrnn_train(tmp_path):
    (tmp_path / "data").mkdir()
    text = _copy(tmp_path, TEXT, "data/input.txt")
    return text, ["-data_dir", tmp_path / "data", "-rnn_size", 8, "-num_layers", 1,
                  "-batch_size", 2, "-seq_length", 10, "-max_epochs", 1, "-gpuid", "-1",
                  "-checkpoint_dir", tmp_path / "cv"]


def _novel_substrings(tmp_path):
    sampled = _copy(tmp_path, TEXT[:200], "sampled.txt")
    training = _copy(tmp_path, TEXT, "training.txt")
    return training, [sampled, training]


def _convert(tmp_path):
    cp = _copy(tmp_path, CHARRNN_CP, "lm.t7")
    return cp, [cp, tmp_path / "out.t7"]


def _bintoutf8(tmp_path):
    data = _copy(tmp_path, bytes(range(256)) * 4, "data.bin")
    return data, [data, tmp_path / "data.txt"]


def _utf8tobin(tmp_path):
    from torchrnn_py.bintoutf8 import encode_file
    data = _copy(tmp_path, bytes(range(256)) * 4, "data.bin")
    encode_file(str(data), str(tmp_path / "data.txt"))
    return tmp_path / "data.bcl", [tmp_path / "data.txt", tmp_path / "out.bin"]


def _plot(tmp_path):
    log = _copy(tmp_path, CP.with_suffix(".json"), "cp.json")
    return log, [log, "-o", tmp_path / "curve.png"]


def _audio(tmp_path):
    import numpy as np
    from scipy.io import wavfile
    wav = tmp_path / "voice.wav"
    wavfile.write(str(wav), 8000, (np.sin(np.arange(800) / 3) * 3000).astype(np.int16))
    return wav, ["encode", wav, tmp_path / "voice.txt"]


STDOUT_INPUTS = {"sample": _sample, "eval": _eval, "train": _train,
                 "preprocess": _preprocess, "charrnn-sample": _charrnn_sample,
                 "charrnn-train": _charrnn_train, "novel_substrings": _novel_substrings,
                 "convert": _convert, "bintoutf8": _bintoutf8, "utf8tobin": _utf8tobin,
                 "plot": _plot, "audio": _audio}


def test_every_command_printing_to_stdout_is_in_the_table():
    assert set(STDOUT_INPUTS) == set(cli.COMMANDS)


@pytest.mark.parametrize("mode", ["r+b", "ab"])            # 1<> input, >> input
@pytest.mark.parametrize("command", sorted(STDOUT_INPUTS))
def test_a_stdout_that_is_an_input_is_refused_before_anything(command, mode, tmp_path,
                                                              monkeypatch, capsys):
    target, argv = STDOUT_INPUTS[command](tmp_path)
    before = target.read_bytes()
    with open(target, mode) as raw:
        monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw, write_through=True))
        status = cli.main([command] + [str(a) for a in argv])
        monkeypatch.undo()
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1, err
    assert f"{target}: stdout is this " in err and "output would be written into it" in err
    assert target.read_bytes() == before                    # not one byte written into it
