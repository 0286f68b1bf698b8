"""How training scales: 1 vs K processes under torchrun, and cost against model size.

1. Throughput of ``torchrnn-train`` with 1 process and with K processes
   (``torchrun --standalone --nproc_per_node K``, gloo on the CPU), the same total batch,
   measured from the ``-log_csv`` timestamps after a warm-up, and the peak resident
   memory of the largest process (``ru_maxrss`` of the launcher's children).
2. Forward + backward time of one minibatch as rnn_size, num_layers and seq_length grow
   (one at a time from the default 2 x 128, T = 50, N = 50).

    python benchmarks/bench_scaling.py                  # both parts
    python benchmarks/bench_scaling.py --part processes --sizes 2x128,2x512
"""
import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

V = 65


def make_dataset(directory, tokens=400_000):
    """Random tokens in preprocess's format (speed does not depend on the text)."""
    from torchrnn_py.vocab import Vocab, write_vocab
    h5 = os.path.join(directory, "data.h5")
    data = np.random.default_rng(0).integers(1, V + 1, tokens, dtype=np.uint8)
    with h5py.File(h5, "w") as f:
        f["train"], f["val"], f["test"] = data[:-20000], data[-20000:-10000], data[-10000:]
    js = os.path.join(directory, "data.json")
    write_vocab(js, Vocab({i + 1: chr(33 + i) for i in range(V)}))
    return h5, js


def run_training(processes, layers, H, iterations, directory, h5, js):
    """(chars/s, peak RSS MB of the largest process) of a short run."""
    csv_path = os.path.join(directory, f"log_{processes}_{layers}x{H}.csv")
    flags = ["-input_h5", h5, "-input_json", js, "-gpu", "-1", "-num_layers", str(layers),
             "-rnn_size", str(H), "-batch_size", "50", "-seq_length", "50",
             "-checkpoint_every", "0", "-print_every", "0", "-seed", "1",
             "-checkpoint_name", os.path.join(directory, "cv", "x"), "-log_csv", csv_path]
    num_train = (380_000 - 1) // 2500
    flags += ["-max_epochs", str(iterations / num_train)]
    if processes == 1:
        command = [sys.executable, "-m", "torchrnn_py.train"] + flags
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   "--nproc_per_node", str(processes), "-m", "torchrnn_py.train"] + flags
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, os.cpu_count() // processes)))
    code = ("import resource, subprocess, sys\n"
            "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    out = subprocess.run([sys.executable, "-c", code] + command, env=env, check=True,
                         capture_output=True, text=True).stdout
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    warm = len(rows) // 5
    seconds = float(rows[-1]["seconds"]) - float(rows[warm]["seconds"])
    return (len(rows) - 1 - warm) * 2500 / seconds, int(out.split()[-1]) / 1024


def part_processes(sizes, iterations, processes):
    print(f"== throughput, 1 vs {processes} processes (N=50 in total, T=50, CPU, gloo)")
    print(f"{'size':>6} {'procs':>5} {'chars/s':>9} {'speed-up':>8} {'peak MB/proc':>13}")
    with tempfile.TemporaryDirectory() as tmp:
        h5, js = make_dataset(tmp)
        for size in sizes:
            layers, H = (int(v) for v in size.split("x"))
            base = None
            for k in (1, processes):
                rate, rss = run_training(k, layers, H, iterations, tmp, h5, js)
                base = base or rate
                print(f"{size:>6} {k:>5} {rate:9.0f} {rate / base:7.2f}x {rss:13.0f}")


def time_config(layers, H, T, N=50, repeats=15):
    import torch
    from torchrnn_py.model import LanguageModel
    model = LanguageModel({i + 1: chr(33 + i) for i in range(V)}, "lstm", 64, H, layers)
    x = torch.randint(1, V + 1, (N, T))
    y = torch.randint(1, V + 1, (N, T))

    def step():
        model.zero_grad()
        model.loss(model(x), y).backward()

    for _ in range(3):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def part_sizes():
    print("== forward + backward of one minibatch (N=50), one thing varied at a time")
    print(f"{'layers':>6} {'rnn_size':>8} {'seq_length':>10} {'ms':>8} {'chars/s':>9}")
    configs = [(2, h, 50) for h in (64, 128, 256, 512, 1024)]
    configs += [(n, 128, 50) for n in (1, 3, 4)]
    configs += [(2, 128, t) for t in (25, 100, 200)]
    for layers, H, T in configs:
        seconds = time_config(layers, H, T)
        print(f"{layers:>6} {H:>8} {T:>10} {seconds * 1e3:8.1f} {50 * T / seconds:9.0f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("processes", "sizes", "both"), default="both")
    parser.add_argument("--sizes", default="2x128,2x512")
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    if args.part in ("processes", "both"):
        part_processes(args.sizes.split(","), args.iterations, args.processes)
    if args.part in ("sizes", "both"):
        part_sizes()
    return 0


if __name__ == "__main__":
    sys.exit(main())
