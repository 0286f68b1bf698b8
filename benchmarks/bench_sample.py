"""Sampling speed: torchrnn_py against a naive PyTorch loop, and memory of a long sample.

Characters per second for LSTMs of 2x128 and 3x680 units (wordvec 64, vocabulary 65):

- ``torchrnn_py``: ``LanguageModel.sample`` (what ``torchrnn-sample`` runs), one stream,
  and with 64 streams computed as one batch (``-num_samples 64``) at 3x680;
- ``naive``: a loop that calls ``torch.nn.LSTM`` once per character per layer, then the
  linear layer, softmax and ``torch.multinomial`` -- the obvious PyTorch port.

The original sample.lua's throughput on this kind of machine is given for reference (Torch7
cannot be installed any more). Each measurement runs in its own process. ``--memory``
also runs ``torchrnn-sample -length L -output_file`` on a small checkpoint for two lengths
and reports the peak resident memory of each (it must not grow with the length).

    python benchmarks/bench_sample.py
    python benchmarks/bench_sample.py --memory --memory_lengths 100000,10000000
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ORIGINAL = {"2x128": 5700, "3x680": 670}      # chars/s of th sample.lua on this machine
V, D = 65, 64


def _model(layers, H):
    from torchrnn_py.model import LanguageModel
    from torchrnn_py.rng import TorchGenerator
    return LanguageModel({i + 1: chr(33 + i) for i in range(V)}, "lstm", D, H, layers,
                         generator=TorchGenerator(0))


def run_ours(layers, H, length, streams):
    model = _model(layers, H)
    model.sample(length=20, seed=1, num_samples=streams)                 # warm up
    start = time.perf_counter()
    model.sample(length=length, seed=1, num_samples=streams)
    return length * streams / (time.perf_counter() - start)


def run_naive(layers, H, length, streams):
    import torch
    torch.manual_seed(0)
    embedding = torch.nn.Embedding(V, D)
    lstms = [torch.nn.LSTM(D if k == 0 else H, H, batch_first=True) for k in range(layers)]
    linear = torch.nn.Linear(H, V)
    with torch.no_grad():
        def generate(n):
            states = [None] * layers
            token = torch.zeros(streams, 1, dtype=torch.long)
            for _ in range(n):
                h = embedding(token)
                for k, lstm in enumerate(lstms):
                    h, states[k] = lstm(h, states[k])
                probs = torch.softmax(linear(h[:, -1]), dim=-1)
                token = torch.multinomial(probs, 1)
        generate(20)
        start = time.perf_counter()
        generate(length)
        return length * streams / (time.perf_counter() - start)


def child(spec):
    variant, size, length, streams = spec.split(":")
    layers, H = (int(v) for v in size.split("x"))
    run = run_ours if variant == "torchrnn_py" else run_naive
    rate = run(layers, H, int(length), int(streams))
    print(json.dumps({"chars_per_s": rate}))


def measure(variant, size, length, streams):
    out = subprocess.run([sys.executable, __file__, "--child",
                          f"{variant}:{size}:{length}:{streams}"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["chars_per_s"]


def memory(lengths):
    """Peak RSS of torchrnn-sample writing samples of each length to a file."""
    from torchrnn_py.checkpoint import save_checkpoint
    with tempfile.TemporaryDirectory() as tmp:
        cp = os.path.join(tmp, "small.t7")
        save_checkpoint(cp, {"model": _model(1, 64), "i": 0}, json_path=None)
        for length in lengths:
            out = os.path.join(tmp, "sample.txt")
            start = time.perf_counter()
            code = ("import resource, subprocess, sys\n"
                    "subprocess.run(sys.argv[1:], check=True)\n"
                    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
            rss = subprocess.run([sys.executable, "-c", code, sys.executable, "-m",
                                  "torchrnn_py.sample", "-checkpoint", cp, "-gpu", "-1",
                                  "-length", str(length), "-seed", "1", "-output_file", out],
                                 check=True, capture_output=True, text=True).stdout
            seconds = time.perf_counter() - start
            print(f"  -length {length:>10,}: {os.path.getsize(out):>12,} bytes written in "
                  f"{seconds:7.1f} s, peak RSS {int(rss.split()[-1]) / 1024:6.0f} MB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--memory_lengths", default="100000,10000000")
    parser.add_argument("--skip_speed", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0
    if not args.skip_speed:
        print(f"{'model':>6} {'streams':>7} {'variant':>12} {'chars/s':>9} {'vs naive':>9} "
              f"{'vs Lua':>7}")
        for size, streams, length, naive_length in (("2x128", 1, 20000, 3000),
                                                    ("3x680", 1, 2000, 300),
                                                    ("3x680", 64, 300, 100)):
            ours = measure("torchrnn_py", size, length, streams)
            naive = measure("naive", size, naive_length, streams)
            lua = f"{ours / ORIGINAL[size]:6.2f}x" if streams == 1 else "     -"
            print(f"{size:>6} {streams:>7} {'naive':>12} {naive:9.0f} {1:8.2f}x "
                  f"{naive / ORIGINAL[size] if streams == 1 else float('nan'):6.2f}x")
            print(f"{size:>6} {streams:>7} {'torchrnn_py':>12} {ours:9.0f} "
                  f"{ours / naive:8.2f}x {lua}")
    if args.memory:
        print("memory of torchrnn-sample -output_file (1x64 LSTM):")
        memory([int(v) for v in args.memory_lengths.split(",")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
