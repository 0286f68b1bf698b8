"""Training speed of torchrnn-charrnn-train (char-rnn's train.lua) against torchrnn-train.

For each model size (LSTM layers x units) and one minibatch shape (-batch_size 50
-seq_length 50 by default), on tiny-shakespeare (65 bytes), this times whole training
iterations (forward, backward, clamp, update, the printed loss and norm) of:

- ``charrnn faithful``: ``torchrnn-charrnn-train -gpuid -1``, float64 on the CPU, char-rnn's
  own per-step model (torchrnn_py/charrnn/net.py) -- the same losses as char-rnn's CPU runs;
- ``charrnn fast``: ``torchrnn-charrnn-train -gpuid -1 -fast 1``, float32 on the CPU on
  torch-rnn's fused layers (torchrnn_py/charrnn/fast.py);
- ``torchrnn-train``: the nearest torch-rnn model, ``-model_type lstm -wordvec_size 65``
  with the same rnn_size, num_layers, batch_size and seq_length (Adam, float32);
- with ``--gpu``: ``torchrnn-charrnn-train -gpuid 0`` (the fast trainer on CUDA, IEEE
  float32) and ``torchrnn-train -gpu 0``.

Each variant runs in its own process, the three in turn, ``--rounds`` times, in this one
invocation. Prints the median over the rounds of each round's median seconds per iteration
(after ``--warmup`` untimed ones), characters per second (batch_size * seq_length / that),
each variant's speed relative to the faithful trainer's and the range of the rounds'
medians; then the same from the fastest single iteration of all rounds ("best"), which a
busy machine disturbs least.

    python benchmarks/bench_charrnn_train.py                  # 2x128 and 2x512
    python benchmarks/bench_charrnn_train.py --sizes 2x128 --iters 10
    python benchmarks/bench_charrnn_train.py --gpu   # adds both on GPU 0 (float32)
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CORPUS = ROOT / "torchrnn_py" / "corpus" / "tiny-shakespeare.txt"
VARIANTS = ("faithful", "fast", "torchrnn")
GPU_VARIANTS = ("fast_gpu", "torchrnn_gpu")
LABELS = {"faithful": "charrnn faithful f64", "fast": "charrnn fast f32",
          "torchrnn": "torchrnn-train f32", "fast_gpu": "charrnn -gpuid 0 f32",
          "torchrnn_gpu": "torchrnn-train -gpu 0"}


def charrnn_times(work, size, batch, seq, iters, fast, gpuid=-1):
    """Seconds between consecutive progress lines of torchrnn-charrnn-train."""
    from torchrnn_py.charrnn.train import train_charrnn
    layers, H = (int(v) for v in size.split("x"))
    stamps = []

    def log(line):
        if "train_loss = " in line:
            stamps.append(time.perf_counter())
    start = time.perf_counter()
    train_charrnn(log=log, save_checkpoint=lambda path, fields: None, max_iterations=iters,
                  data_dir=os.path.join(work, "charrnn"), checkpoint_dir=os.path.join(work, "cv"),
                  model="lstm", rnn_size=H, num_layers=layers, batch_size=batch,
                  seq_length=seq, eval_val_every=10 ** 9, gpuid=gpuid, fast=int(fast))
    return [b - a for a, b in zip([start] + stamps, stamps)]


def torchrnn_times(work, size, batch, seq, iters, vocab_size, train_size, gpu=-1):
    """Seconds per iteration of torchrnn-train (from its progress callback's clock); it
    runs one more, whose validation and checkpoint are not counted."""
    from torchrnn_py.train import train
    layers, H = (int(v) for v in size.split("x"))
    seconds = []
    batches = train_size // (batch * seq)
    train(progress=lambda info: seconds.append(info["seconds"]),
          input_h5=os.path.join(work, "text.h5"), input_json=os.path.join(work, "text.json"),
          model_type="lstm", wordvec_size=vocab_size, rnn_size=H, num_layers=layers,
          batch_size=batch, seq_length=seq, max_epochs=(iters + 1.5) / batches,
          checkpoint_every=0, gpu=gpu, checkpoint_name=os.path.join(work, "cv", "torchrnn"),
          print_every=0)
    return [b - a for a, b in zip([0.0] + seconds, seconds)][:iters]


def prepare(work):
    """The same text for both: char-rnn's data folder and torch-rnn's HDF5/JSON."""
    from torchrnn_py.charrnn.data import prepare_data_dir
    from torchrnn_py.preprocess import preprocess
    folder = pathlib.Path(work) / "charrnn"
    folder.mkdir()
    (folder / "input.txt").write_bytes(CORPUS.read_bytes())
    prepare_data_dir(str(folder))
    info = preprocess(str(folder / "input.txt"), os.path.join(work, "text.h5"),
                      os.path.join(work, "text.json"))
    return info["vocab_size"], info["train_size"]


def child(args):
    variant, size, iters, vocab_size, train_size = args.child.split(":")
    iters, vocab_size, train_size = int(iters), int(vocab_size), int(train_size)
    gpu = 0 if variant.endswith("_gpu") else -1
    if variant.startswith("torchrnn"):
        times = torchrnn_times(args.work, size, args.batch_size, args.seq_length, iters,
                               vocab_size, train_size, gpu)
    else:
        times = charrnn_times(args.work, size, args.batch_size, args.seq_length, iters,
                              variant != "faithful", gpu)
    print(json.dumps({"variant": variant, "times": times}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="2x128,2x512")
    parser.add_argument("--batch_size", type=int, default=50)
    parser.add_argument("--seq_length", type=int, default=50)
    parser.add_argument("--iters", type=int, default=0, help="iterations run (0: by size)")
    parser.add_argument("--warmup", type=int, default=2, help="first iterations not timed")
    parser.add_argument("--rounds", type=int, default=3,
                        help="processes per variant, taken in turn (a busy machine varies)")
    parser.add_argument("--gpu", action="store_true",
                        help="also time -gpuid 0 (the fast trainer on CUDA) and torchrnn-train "
                             "-gpu 0, where CUDA is there")
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0
    chars = args.batch_size * args.seq_length
    variants = VARIANTS
    if args.gpu:
        import torch
        if torch.cuda.is_available():
            variants += GPU_VARIANTS
        else:
            print("GPU variants skipped: no CUDA device")
    print(f"batch_size={args.batch_size} seq_length={args.seq_length}, LSTM, tiny-shakespeare, "
          f"{os.cpu_count()} CPU(s), torch threads: default")
    print(f"{'':>28} {'median':-^34} {'best':-^26}")
    print(f"{'size':>6} {'variant':>21} {'s/iter':>8} {'chars/s':>8} {'ratio':>8} "
          f"{'rounds':>15} {'s/iter':>8} {'chars/s':>8} {'ratio':>8}")
    with tempfile.TemporaryDirectory() as work:
        vocab_size, train_size = prepare(work)
        for size in args.sizes.split(","):
            iters = args.iters or {"2x128": 20, "2x512": 8}.get(size, 6)
            rounds = {variant: [] for variant in variants}
            best = {variant: float("inf") for variant in variants}
            for _ in range(args.rounds):
                for variant in variants:
                    spec = f"{variant}:{size}:{iters + args.warmup}:{vocab_size}:{train_size}"
                    out = subprocess.run(
                        [sys.executable, __file__, "--work", work, "--batch_size",
                         str(args.batch_size), "--seq_length", str(args.seq_length),
                         "--child", spec], check=True, capture_output=True, text=True).stdout
                    times = json.loads(out.strip().splitlines()[-1])["times"][args.warmup:]
                    rounds[variant].append(statistics.median(times))
                    best[variant] = min(best[variant], min(times))
            medians = {variant: statistics.median(r) for variant, r in rounds.items()}
            for variant in variants:
                m, b = medians[variant], best[variant]
                spread = f"{min(rounds[variant]):.4f}-{max(rounds[variant]):.4f}"
                print(f"{size:>6} {LABELS[variant]:>21} {m:8.4f} {chars / m:8.0f} "
                      f"{medians['faithful'] / m:7.2f}x {spread:>15} {b:8.4f} {chars / b:8.0f} "
                      f"{best['faithful'] / b:7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
