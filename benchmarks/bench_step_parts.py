"""Interleaved A/B, in one process, of the training step's small parts on this machine.

- Adam and the gradient clamp over a LanguageModel's parameters: one tensor at a time
  (the CPU's default) against ``torch._foreach_*`` (CUDA's default);
- Torch7-seeded dropout noise: the mask as float32 divided by a (1 - p) tensor (the formula
  Dropout used before) against the bool mask converted and scaled in place (what it does now).

Each repetition runs every variant once, in alternating order; prints medians. Results of
the variants are checked equal bit for bit.

    python benchmarks/bench_step_parts.py --sizes 2x128,2x512 --reps 400
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from torchrnn_py.model import LanguageModel                  # noqa: E402
from torchrnn_py.modules import Dropout                      # noqa: E402
from torchrnn_py.optim import TorchAdam, clamp_gradients_    # noqa: E402
from torchrnn_py.rng import TorchGenerator                   # noqa: E402

N, T, D, V = 50, 50, 64, 65


def interleaved(variants, reps):
    """{name: median seconds} of ``variants`` ({name: fn}), run alternately ``reps`` times."""
    times = {name: [] for name in variants}
    names = list(variants)
    for r in range(reps):
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def optimizer_parts(layers, H, reps):
    """Adam and clamp, per tensor and foreach, on copies of one model's parameters."""
    model = LanguageModel({i + 1: chr(33 + i) for i in range(V)}, "lstm", D, H, layers)
    grads = [torch.randn_like(p) * 4 for p in model.parameters()]
    copies = {}
    for foreach in (False, True):
        params = [torch.nn.Parameter(p.detach().clone()) for p in model.parameters()]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        copies[foreach] = (params, TorchAdam(params, lr=2e-3, foreach=foreach))
    result = interleaved({f"adam {'foreach' if fe else 'per-tensor'}": copies[fe][1].step
                          for fe in (False, True)}, reps)
    result.update(interleaved({f"clamp {'foreach' if fe else 'per-tensor'}":
                               (lambda fe=fe: clamp_gradients_(copies[fe][0], 5, foreach=fe))
                               for fe in (False, True)}, reps))
    for a, b in zip(copies[False][0], copies[True][0]):
        assert torch.equal(a, b) and torch.equal(a.grad, b.grad)
    return result


def dropout_parts(H, reps, p=0.25):
    """Forward + backward through seeded dropout: the old float formula against Dropout."""
    x = torch.randn(N, T, H).requires_grad_()
    grad_out = torch.randn(N, T, H)
    drop = Dropout(p).train()
    drop.generator = TorchGenerator(1)
    old_gen = TorchGenerator(1)

    def old():
        keep = old_gen.bernoulli(x.numel(), 1 - p)
        noise = torch.from_numpy(keep).to(dtype=x.dtype).view_as(x)
        (x * (noise / torch.tensor(1 - p, dtype=x.dtype))).backward(grad_out)

    def new():
        drop(x).backward(grad_out)

    result = interleaved({"dropout float32 mask": old, "dropout bool mask": new}, reps)
    assert np.array_equal(drop.generator.bernoulli(8, 0.5), old_gen.bernoulli(8, 0.5))
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="2x128,2x512")
    parser.add_argument("--reps", type=int, default=400)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.threads} thread(s), {args.reps} interleaved repetitions, medians")
    for size in args.sizes.split(","):
        layers, H = (int(v) for v in size.split("x"))
        results = optimizer_parts(layers, H, args.reps)
        results.update(dropout_parts(H, args.reps))
        for name, seconds in results.items():
            print(f"{size:>6} {name:>22} {seconds * 1e6:10.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
