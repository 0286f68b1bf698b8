"""The examples and the README's quickstart: examples/quickstart.ipynb executed top to bottom
in a real Jupyter kernel, examples/voice.sh's documented settings, the README's numbers
checked against the bundled data."""
import base64
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from torchrnn_py import DataLoader
from torchrnn_py.preprocess import preprocess

REPO = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "examples" / "quickstart.ipynb"
BUNDLED_TEXT = REPO / "torchrnn_py" / "corpus" / "tiny-shakespeare.txt"


def _python3_kernelspec(directory):
    """A kernelspec named python3 that runs this very interpreter (found first through
    JUPYTER_PATH, so nothing is registered anywhere else)."""
    kernel_dir = directory / "kernels" / "python3"
    kernel_dir.mkdir(parents=True)
    (kernel_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (this test's interpreter)", "language": "python"}))


def _run_notebook(tmp_path, monkeypatch):
    import nbformat                        # test extras (setup.cfg [test]): nbformat, nbclient,
    from nbclient import NotebookClient    # ipykernel

    _python3_kernelspec(tmp_path / "jupyter")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    # the kernel imports this checkout's package, whatever is installed
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    monkeypatch.setenv("TMPDIR", str(tmp_path))           # the notebook's WORK folder
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        "import sys, torchrnn_py; print(sys.executable); print(torchrnn_py.__file__)",
        metadata={"tags": ["which_python"]}))
    # generous limits: a busy 2-core CI machine runs the cells ten times slower than idle
    NotebookClient(nb, timeout=600, startup_timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    return {cell.metadata["tags"][0]: cell for cell in nb.cells
            if cell.cell_type == "code"}


def _stdout(cell):
    return "".join(o.get("text", "") for o in cell.outputs
                   if o.output_type == "stream" and o.name == "stdout")


def _data(cell, mime):
    return [o["data"][mime] for o in cell.outputs
            if o.output_type in ("display_data", "execute_result") and mime in o.get("data", {})]


# Slow on purpose (about 10 s): it starts a Jupyter kernel and runs the whole notebook.
def test_quickstart_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    cells = _run_notebook(tmp_path, monkeypatch)
    for cell in cells.values():                 # an error output would have raised already
        assert all(o.output_type != "error" for o in cell.outputs)

    which = _stdout(cells["which_python"]).splitlines()
    assert which[0] == sys.executable
    assert pathlib.Path(which[1]).resolve().is_relative_to(REPO)

    assert re.fullmatch(r"\d+ tokens; train / val / test: 80000 / 10000 / 10000 characters\n",
                        _stdout(cells["preprocess"]))

    # the live line was updated in place and ended on the last iteration, with validation
    (line,) = _data(cells["train"], "text/plain")
    done = re.fullmatch(r"iteration (\d+)/(\d+), epoch [\d.]+, loss [\d.]+, "
                        r"validation loss [\d.]+ \([\d.]+ s\)", line)
    assert done and done.group(1) == done.group(2), line
    calls = re.search(r"(\d+) progress calls; checkpoint: quick_(\d+)\.t7",
                      _stdout(cells["train"]))
    assert calls and calls.group(1) == calls.group(2) == done.group(2)
    assert int(done.group(2)) >= 100
    assert _data(cells["plot"], "image/png")

    text = _stdout(cells["sample"])
    assert text.endswith("\n") and len(text) == 300 + 1 and text.startswith("ROMEO:")
    assert _stdout(cells["same_seed"]) == "same seed, same text: True\n"

    legacy = _stdout(cells["legacy"]).splitlines()
    top = [float(row.split()[-1]) for row in legacy[1:6]]
    assert legacy[0] == "after 'Little ':" and top == sorted(top, reverse=True)
    assert 0 < sum(top) <= 1.0001
    total = re.fullmatch(r"sum of all 84 probabilities: ([\d.]+)", legacy[6])
    assert total and abs(float(total.group(1)) - 1) < 1e-5

    audio = _stdout(cells["audio"])
    assert "8000 samples -> 8000 characters" in audio and "8000 samples back" in audio
    assert float(re.search(r"largest difference from the tone: ([\d.]+)", audio).group(1)) \
        < 0.02
    (player,) = _data(cells["audio"], "text/html")          # IPython.display.Audio
    wav = re.search(r'<audio[^>]*>\s*<source src="data:audio/[a-z-]*wav;base64,([^"]+)"',
                    player)
    assert wav and base64.b64decode(wav.group(1))[:4] == b"RIFF"
    assert len(base64.b64decode(wav.group(1))) == 44 + 2 * 8000    # 1 s of 16-bit samples
    assert not list(tmp_path.glob("torchrnn_quickstart_*"))        # the last cell cleaned up


def test_readme_checkpoint_number_is_one_epoch_of_the_bundled_data(tmp_path):
    # README: -max_epochs 1 on the bundled text (default batch 50 x seq 50) ends at 356
    info = preprocess(str(BUNDLED_TEXT), str(tmp_path / "t.h5"), str(tmp_path / "t.json"))
    batches = DataLoader(str(tmp_path / "t.h5"), batch_size=50, seq_length=50).split_sizes
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert info["train_size"] == 892_316 and "892,316" in readme
    assert batches["train"] == 356
    assert "-checkpoint cv/shakespeare_356.t7" in readme and "356 batches" in readme


VOICE_SH = REPO / "examples" / "voice.sh"


def test_voice_sh_reads_every_setting_its_header_documents():
    script = VOICE_SH.read_text(encoding="utf-8")
    header = script.split("set -euo pipefail")[0]
    documented = re.findall(r"#\s+((?:[A-Z_]+=\S+ )+)bash examples/voice.sh", header)
    names = {a.split("=")[0] for line in documented for a in line.split()}
    assert {"MINUTES", "ITERS", "SECONDS_OUT"} <= names
    body = script.split("set -euo pipefail")[1]
    for name in names:                  # set from the environment, then used at least once
        assert f"{name}=${{{name}:-" in body, name
        assert len(re.findall(r"\$\{?%s\b" % name, body)) >= 2, name


@pytest.mark.parametrize("settings, needle", [
    ({"MINUTES": "nan"}, "MINUTES must be a number of minutes above 0, found 'nan'"),
    ({"MINUTES": "-1"}, "MINUTES must be"),
    ({"MINUTES": "1e999"}, "MINUTES must be"),
    ({"ITERS": "2.5"}, "ITERS must be a whole number above 0, found '2.5'"),
    ({"EPOCHS": "inf"}, "EPOCHS must be a number, found 'inf'"),
])
def test_voice_sh_refuses_bad_settings_before_doing_anything(tmp_path, settings, needle):
    out = tmp_path / "voice"
    env = dict(os.environ, OUT=str(out), **settings)
    done = subprocess.run(["bash", str(VOICE_SH)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.strip() == f"voice.sh: {needle}" or (
        needle in done.stderr and len(done.stderr.strip().splitlines()) == 1), done.stderr
    assert done.stdout == "" and not out.exists()
