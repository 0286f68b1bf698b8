"""Benchmark our preprocess against torch-rnn's original scripts/preprocess.py.

Builds a ~22 MB text (tiny-shakespeare x20) in a temporary directory, times both programs,
checks that their outputs are identical and prints MB/s and the speed ratio. ``--big`` also
makes a ~1 GB file and reports the peak resident memory of our preprocess run in a child.
The original is extracted at run time from the torch-rnn mirror (or given with --original);
it needs ``six`` (``pip install six``). It is never copied into this repository.

    python benchmarks/bench_preprocess.py [--original PATH] [--copies 20] [--big]
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from torchrnn_py.preprocess import preprocess  # noqa: E402

SHAKESPEARE = REPO / "torchrnn_py" / "corpus" / "tiny-shakespeare.txt"
CHINESE = REPO / "tests" / "fixtures" / "preprocess" / "li_qing_zhao.txt"
MIRROR = "/work/.mirror/jcjohnson+torch-rnn/repo"
MB = 1e6


def original_script(path, workdir):
    """Path of the original preprocess.py: ``path`` if given, else extracted from the mirror."""
    if path:
        return pathlib.Path(path)
    source = subprocess.run(["git", "-C", MIRROR, "show", "HEAD:scripts/preprocess.py"],
                            check=True, capture_output=True).stdout
    target = pathlib.Path(workdir) / "original_preprocess.py"
    target.write_bytes(source)
    return target


def make_text(target, copies, extra_line=b"", source=SHAKESPEARE):
    """Write ``copies`` copies of ``source`` (each followed by ``extra_line``)."""
    block = source.read_bytes() + extra_line
    with open(target, "wb") as f:
        for _ in range(copies):
            f.write(block)
    return os.path.getsize(target)


def same_outputs(h5_a, json_a, h5_b, json_b):
    """True when both HDF5 files hold equal /train /val /test (values and dtype) and the
    JSON files are equal as data."""
    with h5py.File(h5_a, "r") as a, h5py.File(h5_b, "r") as b:
        for name in ("train", "val", "test"):
            if a[name].dtype != b[name].dtype or not np.array_equal(a[name][()], b[name][()]):
                return False
    with open(json_a) as fa, open(json_b) as fb:
        return json.load(fa) == json.load(fb)


def time_ours_in_process(text, out_dir, repeats):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        preprocess(text, out_dir / "ours.h5", out_dir / "ours.json")
        best = min(best, time.perf_counter() - start)
    return best


# A fresh, small Python that runs the command and reports its children's peak RSS. Linux
# carries the parent's high-water mark into a child across fork/vfork + exec, so a child
# started straight from this (large) process would report our size, not its own.
_LAUNCHER = ("import resource, subprocess, sys, time; start = time.perf_counter(); "
             "code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL); "
             "print(code, time.perf_counter() - start, "
             "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def run_child(args):
    """Run a command; return (wall seconds, peak RSS in MB of the command alone)."""
    out = subprocess.run([sys.executable, "-c", _LAUNCHER] + [str(a) for a in args],
                         check=True, capture_output=True, text=True).stdout
    code, wall, max_rss_kb = out.split()
    code, wall, max_rss_kb = int(code), float(wall), int(max_rss_kb)
    if code != 0:
        raise SystemExit(f"command failed with status {code}: {' '.join(map(str, args))}")
    return wall, max_rss_kb / 1024  # Linux reports kilobytes


def ours_command(text, h5, js):
    return [sys.executable, "-m", "torchrnn_py.preprocess", "--input_txt", str(text),
            "--output_h5", str(h5), "--output_json", str(js)]


def bench_22mb(opts, tmp):
    text = tmp / f"shakespeare_x{opts.copies}.txt"
    size = make_text(text, opts.copies)
    print(f"input: {text.name}, {size / MB:.1f} MB")

    ours_s = time_ours_in_process(text, tmp, opts.repeats)
    os.chdir(REPO)
    ours_cmd_s, ours_rss = run_child(ours_command(text, tmp / "ours_cmd.h5",
                                                  tmp / "ours_cmd.json"))
    print(f"ours, library call (best of {opts.repeats}): {ours_s:.3f} s = "
          f"{size / MB / ours_s:.0f} MB/s")
    print(f"ours, whole command (python -m, imports included): {ours_cmd_s:.3f} s = "
          f"{size / MB / ours_cmd_s:.0f} MB/s, peak RSS {ours_rss:.0f} MB")
    if opts.skip_original:
        return
    script = original_script(opts.original, tmp)
    orig_s, orig_rss = run_child([sys.executable, str(script), "--input_txt", str(text),
                                  "--output_h5", str(tmp / "orig.h5"),
                                  "--output_json", str(tmp / "orig.json")])
    print(f"original (python {sys.version.split()[0]}): {orig_s:.3f} s = "
          f"{size / MB / orig_s:.1f} MB/s, peak RSS {orig_rss:.0f} MB")
    identical = (same_outputs(tmp / "ours.h5", tmp / "ours.json",
                              tmp / "orig.h5", tmp / "orig.json")
                 and same_outputs(tmp / "ours_cmd.h5", tmp / "ours_cmd.json",
                                  tmp / "orig.h5", tmp / "orig.json"))
    print(f"outputs identical: {identical}")
    print(f"speed ratio: {orig_s / ours_s:.1f}x (library call), "
          f"{orig_s / ours_cmd_s:.1f}x (whole command)")
    if not identical:
        raise SystemExit("outputs differ")


def bench_big(opts, tmp):
    """Peak RSS of our command on ~1 GB inputs: ASCII, mostly ASCII with wide characters
    (UCS-4 strings, uint8 ids), and Chinese (1037 tokens, uint32 ids)."""
    os.chdir(REPO)
    kinds = (("ascii", SHAKESPEARE, b""),
             ("mixed", SHAKESPEARE, "\u00e9\u4e2d\U0001F600\n".encode("utf-8")),
             ("chinese", CHINESE, b""))
    for kind, source, extra in kinds:
        copies = max(1, int(opts.big_mb * MB / (source.stat().st_size + len(extra))))
        text = tmp / f"big_{kind}.txt"
        size = make_text(text, copies, extra, source)
        wall, rss = run_child(ours_command(text, tmp / "big.h5", tmp / "big.json"))
        print(f"big {kind}: {size / MB:.0f} MB in {wall:.1f} s = {size / MB / wall:.0f} MB/s, "
              f"peak RSS {rss:.0f} MB")
        for path in (text, tmp / "big.h5", tmp / "big.json"):
            path.unlink()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original", help="path of the original preprocess.py")
    parser.add_argument("--copies", type=int, default=20, help="copies of tiny-shakespeare")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip_original", action="store_true")
    parser.add_argument("--big", action="store_true", help="also measure a ~1 GB input")
    parser.add_argument("--big_mb", type=float, default=1024)
    parser.add_argument("--tmpdir", help="where to put the temporary files")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=opts.tmpdir) as tmp:
        tmp = pathlib.Path(tmp)
        bench_22mb(opts, tmp)
        if opts.big:
            bench_big(opts, tmp)


if __name__ == "__main__":
    main()
