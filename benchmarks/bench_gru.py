"""Training throughput of ``-model_type gru`` against ``-model_type lstm`` of the same size.

For each size (layers x units; N=50, T=50, wordvec 64, V=65, as tiny-shakespeare) this times
torchrnn-train's whole training step -- forward, backward, the printed loss value, the
gradient clamp and Adam -- for:

- ``lstm``: the LanguageModel LSTM (``torch.nn.LSTM``'s fused kernel);
- ``gru``: the LanguageModel GRU (torchrnn_py/modules.py: one product for ``x Wx + b`` of
  all steps, a loop of in-place ops, a hand-written backward);
- ``gru_autograd`` (with ``--reference``): the same GRU written as plain per-step PyTorch ops
  differentiated by autograd, i.e. what the layer would cost without its own backward.

The variants run in one process, interleaved step by step (A, B, A, B, ...), so that a
machine whose load changes during the run slows them alike; medians are reported, as
characters per second (N*T / seconds) and as the ratio to the LSTM.

    python benchmarks/bench_gru.py                       # 2x128 and 2x512
    python benchmarks/bench_gru.py --sizes 2x128 --iters 40 --reference
"""
import argparse
import os
import statistics
import sys
import time

from bench_train import D, N, T, V  # noqa: E402,F401  (the batch and model sizes of bench_train.py)


def autograd_gru(x, weight, bias, H):
    """The GRU's equations per step in plain ops (autograd does the backward).
    x (N, T, D) -> (N, T, H)."""
    import torch
    Db = x.shape[2]
    Wx, Wh = weight[:Db], weight[Db:]
    a = torch.addmm(bias, x.reshape(-1, Db), Wx).view(x.shape[0], x.shape[1], 3 * H)
    h = x.new_zeros(x.shape[0], H)
    outputs = []
    for t in range(x.shape[1]):
        zr = torch.sigmoid(a[:, t, :2 * H] + h @ Wh[:, :2 * H])
        z, r = zr[:, :H], zr[:, H:]
        c = torch.tanh(a[:, t, 2 * H:] + (r * h) @ Wh[:, 2 * H:])
        h = z * c + (1 - z) * h
        outputs.append(h)
    return torch.stack(outputs, 1)


def make_step(variant, layers, H):
    """A closure running one training step of ``variant`` on a fixed random batch."""
    from bench_train import training_setup
    from torchrnn_py.criterion import torch7_loss_value
    from torchrnn_py.optim import clamp_gradients_
    model, x, y, optimizer = training_setup("lstm" if variant == "lstm" else "gru", layers, H)

    def forward():
        if variant != "gru_autograd":
            model.reset_states()                   # the same work every step
            return model(x)
        h = model.embedding(x - 1)
        for rnn in model.rnns:
            h = autograd_gru(h, rnn.weight, rnn.bias, H)
        return model.linear(h)

    def step():
        optimizer.zero_grad(set_to_none=False)
        scores = forward()
        model.loss(scores, y).backward()
        torch7_loss_value(scores, y)
        clamp_gradients_(model.parameters(), 5)
        optimizer.step()
    return step


def measure(size, iters, variants):
    """Median seconds per step of each variant, interleaved."""
    layers, H = (int(v) for v in size.split("x"))
    steps = {variant: make_step(variant, layers, H) for variant in variants}
    for step in steps.values():                    # warm up
        step()
        step()
    times = {variant: [] for variant in variants}
    for _ in range(iters):
        for variant, step in steps.items():
            start = time.perf_counter()
            step()
            times[variant].append(time.perf_counter() - start)
    return {variant: statistics.median(values) for variant, values in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="2x128,2x512")
    parser.add_argument("--iters", type=int, default=0, help="timed steps (0: by size)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--reference", action="store_true",
                        help="also time the GRU differentiated by plain autograd")
    args = parser.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    variants = ("lstm", "gru") + (("gru_autograd",) if args.reference else ())
    print(f"N={N} T={T} wordvec={D} V={V}, {args.threads} thread(s), whole training step, "
          f"torch {torch.__version__}")
    print(f"{'size':>6} {'variant':>13} {'ms/iter':>9} {'chars/s':>9} {'vs lstm':>8}")
    for size in args.sizes.split(","):
        iters = args.iters or {"2x128": 40, "2x512": 10}.get(size, 5)
        seconds = measure(size, iters, variants)
        for variant, s in seconds.items():
            print(f"{size:>6} {variant:>13} {s * 1e3:9.1f} {N * T / s:9.0f} "
                  f"{seconds['lstm'] / s:7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
