"""Training throughput: torchrnn_py against a reference that computes the way torch-rnn does.

For each model size (LSTM layers x units; N=50, T=50, wordvec 64, vocabulary 65, as
tiny-shakespeare) this times one forward + backward pass over a minibatch (what train.lua's
``-speed_benchmark`` times) for:

- ``torchrnn_py``: the LanguageModel as train uses it;
- ``reference``: the same model written the way torch-rnn's LSTM.lua computes, one matrix
  multiply per time step (``x_t Wx + h Wh + b``, then the gates) in plain PyTorch ops, with
  autograd for the backward pass;
- ``step`` (with ``--step``): torchrnn_py's whole training step as train runs it: forward,
  backward, the printed loss value, the gradient clamp and torch/optim's Adam.

Each variant runs in its own process, so that its peak resident memory (``ru_maxrss``) is
its own. Prints characters per second (N*T / median time), the ratio, and the ratio to the
original Lua torch-rnn's throughput measured on the same kind of machine (given in the
table below; Torch7 cannot be installed any more, so it is not re-run here).

    python benchmarks/bench_train.py            # all sizes
    python benchmarks/bench_train.py --sizes 2x128 --iters 20
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

# chars/s of the original torch-rnn (th train.lua -speed_benchmark 1, CPU) on this machine
ORIGINAL = {"2x128": 21000, "2x512": 2300, "3x680": 1200}
N, T, D, V = 50, 50, 64, 65


def reference_lstm_forward(x, weight, bias, H):
    """torch-rnn's LSTM.lua, step by step: a = x_t Wx + h Wh + b; i, f, o = sigmoid;
    g = tanh; c = f c + i g; h = o tanh(c). x (N, T, D) -> (N, T, H)."""
    import torch
    Nb, Tb, Db = x.shape
    Wx, Wh = weight[:Db], weight[Db:]
    h = x.new_zeros(Nb, H)
    c = x.new_zeros(Nb, H)
    outputs = []
    for t in range(Tb):
        a = torch.addmm(bias, x[:, t], Wx) + h @ Wh
        i, f, o = torch.sigmoid(a[:, :3 * H]).split(H, dim=1)
        g = torch.tanh(a[:, 3 * H:])
        c = f * c + i * g
        h = o * torch.tanh(c)
        outputs.append(h)
    return torch.stack(outputs, 1)


def training_setup(model_type, layers, H):
    """A LanguageModel of V tokens in training mode, a fixed random batch x, y (N, T) and
    its TorchAdam: what every training benchmark times (bench_gru.py too)."""
    import torch
    from torchrnn_py.model import LanguageModel
    from torchrnn_py.optim import TorchAdam
    model = LanguageModel({i + 1: chr(33 + i) for i in range(V)}, model_type, D, H, layers)
    model.train()
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(1, V + 1, (N, T), generator=gen)
    y = torch.randint(1, V + 1, (N, T), generator=gen)
    return model, x, y, TorchAdam(model.parameters(), lr=2e-3)


def run_variant(variant, layers, H, iters, threads):
    """Time ``iters`` forward/backward passes in this process; returns a result dict."""
    import torch
    from torchrnn_py.optim import clamp_gradients_
    from torchrnn_py.criterion import torch7_loss_value
    torch.set_num_threads(threads)
    model, x, y, optimizer = training_setup("lstm", layers, H)

    def step():
        model.zero_grad()
        if variant == "step":
            scores = model(x)
            model.loss(scores, y).backward()
            torch7_loss_value(scores, y)
            clamp_gradients_(model.parameters(), 5)
            optimizer.step()
            return
        if variant == "torchrnn_py":
            scores = model(x)
        else:
            h = model.embedding(x - 1)
            for rnn in model.rnns:
                h = reference_lstm_forward(h, rnn.weight, rnn.bias, H)
            scores = model.linear(h)
        model.loss(scores, y).backward()

    for _ in range(2):
        step()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"variant": variant, "seconds": median, "chars_per_s": N * T / median,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="2x128,2x512,3x680")
    parser.add_argument("--iters", type=int, default=0, help="timed passes (0: by size)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--step", action="store_true",
                        help="also time the whole training step (loss value, clamp, Adam)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        variant, size, iters = args.child.split(":")
        layers, H = (int(v) for v in size.split("x"))
        print(json.dumps(run_variant(variant, layers, H, int(iters), args.threads)))
        return 0

    print(f"N={N} T={T} wordvec={D} V={V}, {args.threads} thread(s), forward + backward")
    print(f"{'size':>6} {'variant':>12} {'ms/iter':>9} {'chars/s':>9} {'peak MB':>8} "
          f"{'vs ref':>7} {'vs Lua':>7}")
    for size in args.sizes.split(","):
        iters = args.iters or {"2x128": 30, "2x512": 8}.get(size, 5)
        results = {}
        for variant in ("reference", "torchrnn_py") + (("step",) if args.step else ()):
            out = subprocess.run([sys.executable, __file__, "--threads", str(args.threads),
                                  "--child", f"{variant}:{size}:{iters}"],
                                 check=True, capture_output=True, text=True).stdout
            results[variant] = json.loads(out.strip().splitlines()[-1])
        for variant, r in results.items():
            ratio = r["chars_per_s"] / results["reference"]["chars_per_s"]
            lua = r["chars_per_s"] / ORIGINAL[size] if size in ORIGINAL else float("nan")
            print(f"{size:>6} {variant:>12} {r['seconds'] * 1e3:9.1f} {r['chars_per_s']:9.0f} "
                  f"{r['peak_rss_mb']:8.0f} {ratio:6.2f}x {lua:6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
