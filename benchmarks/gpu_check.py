"""Check the GPU path against the CPU, then measure it: one short run (< 5 min on an H200).

CPU half (any machine): the weights handed to the fused kernel pass cuDNN's buffer checks
(emulated), the CUDA precision defaults to IEEE float32, the remembered state follows
``.to()``, a backward in evaluation mode works. GPU half (CUDA only): (1) LSTM and
VanillaRNN on CUDA against the CPU with the same weights (outputs, states, gradients; train
and eval; T=1; no_grad); (2) a tiny train with -dropout 0.25 -batchnorm 1 -memory_benchmark 1
-speed_benchmark 1, seeded and unseeded, then eval on GPU and CPU agreeing to ~1e-5; (3)
-seed 1: the first 20 losses on GPU and CPU within ~1e-5; (4) resume GPU->GPU, GPU->CPU,
CPU->GPU; (5) sampling -seed 1 with and without start text and 4 streams, GPU text = CPU
text; (6) char-rnn: charrnn-sample -gpuid 0 gives the fixture bytes, and the fast trainer's
first 20 losses on the GPU (float32) agree with the CPU's; (7) the training loss read one
step late prints the lines of reading it at once, and batches streamed from pinned memory
give the losses of data kept on the GPU; (8) the sampling stepper's CUDA graph: LSTM, GRU,
RNN (and batchnorm), 1 and 64 streams, with and without start text, gives the eager
stepper's scores and the CPU's text, and the graph path really ran; then chars/s of train
and sample for 2x128, 2x512, 3x680 (and the GRU's training at 2x512, and the 2x512 sampler
with 64 streams through the CUDA graph and eagerly). GRU is checked in (1) too.

    python benchmarks/gpu_check.py            # exit 0 when every check that could run passed
"""
import contextlib
import pathlib
import sys
import tempfile
import time
import warnings

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from test_gpu_path import cudnn_fallback_copy, cudnn_weight_buffer, kernel_params  # noqa: E402

from torchrnn_py import device as device_mod, train as train_mod     # noqa: E402
from torchrnn_py import sampling                                    # noqa: E402
from torchrnn_py.rng import TorchGenerator                          # noqa: E402
from torchrnn_py.sampling import TorchStepper                       # noqa: E402
from torchrnn_py.evaluate import evaluate_split                     # noqa: E402
from torchrnn_py.checkpoint import load_model                       # noqa: E402
from torchrnn_py.data import DataLoader                             # noqa: E402
from torchrnn_py.model import LanguageModel                         # noqa: E402
from torchrnn_py.modules import GRU, LSTM, VanillaRNN               # noqa: E402
from torchrnn_py.charrnn.train import train_charrnn                 # noqa: E402
from torchrnn_py.cli import charrnn_sample                          # noqa: E402

GOLDEN = ROOT / "tests" / "fixtures" / "golden"
CHARRNN = ROOT / "tests" / "fixtures" / "charrnn"
DATA = dict(input_h5=str(GOLDEN / "shakespeare200k.h5"),
            input_json=str(GOLDEN / "shakespeare200k.json"))
TINY = dict(DATA, num_layers=2, rnn_size=64, wordvec_size=32, batch_size=10, seq_length=25,
            print_every=0, checkpoint_every=0)
FAILED = []


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{(': ' + detail) if detail else ''}", flush=True)
    if not ok:
        FAILED.append(name)


def cpu_half():
    for cls, gates in ((LSTM, 4), (VanillaRNN, 1)):
        rnn = cls(5, 3)
        params, _ = kernel_params(rnn, torch.randn(2, 4, 5))
        cudnn_fallback_copy(params)
        check(f"{cls.__name__}: kernel weights are cuDNN's flat buffer",
              cudnn_weight_buffer(params, gates * 3, 5, 3) is not None)
    check("CUDA precision: IEEE float32 by default",
          device_mod.cuda_precision_settings("fp32")["rnn"] == "ieee")
    rnn = LSTM(3, 2)
    rnn.remember_states = True
    rnn(torch.randn(2, 2, 3))
    rnn.double()
    check("remembered state follows .to()", rnn.state[0].dtype == torch.float64)
    rnn.eval()
    params, out = kernel_params(rnn, torch.randn(2, 2, 3, dtype=torch.float64))
    out.sum().backward()
    check("backward in eval mode (kernel in training mode)", params["training"] is True)


def max_diff(a, b):
    return float((a.detach().double().cpu() - b.detach().double().cpu()).abs().max())


def modules_against_cpu(cuda):
    for cls in (LSTM, VanillaRNN, GRU):
        for training, T, grad in ((True, 7, True), (False, 7, True), (False, 1, False)):
            cpu = cls(16, 32)
            gpu = cls(16, 32).to(cuda)
            gpu.load_state_dict(cpu.state_dict())
            cpu.train(training), gpu.train(training)
            x = torch.randn(3, T, 16)
            with torch.set_grad_enabled(grad), warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                out_c, out_g = cpu(x), gpu(x.to(cuda))
                if grad:
                    out_c.square().sum().backward()
                    out_g.square().sum().backward()
            diffs = [max_diff(out_c, out_g), max_diff(cpu.state[0], gpu.state[0])]
            if grad:
                diffs += [max_diff(cpu.weight.grad, gpu.weight.grad),
                          max_diff(cpu.bias.grad, gpu.bias.grad)]
            check(f"(1) {cls.__name__} train={training} T={T} grad={grad} CUDA = CPU",
                  max(diffs) < 1e-5 and not seen, f"max diff {max(diffs):.2e}, "
                  f"{len(seen)} warning(s)")


def train_eval_resume(tmp):
    for seed in (1, -1):
        opts = dict(TINY, max_epochs=0.05, dropout=0.25, batchnorm=1, memory_benchmark=1,
                    speed_benchmark=1, seed=seed, gpu=0, checkpoint_name=f"{tmp}/bn{seed}")
        result = train_mod.train(**opts)
        model = result["model"]
        losses = []
        for device in ("cuda", "cpu"):
            model.to(device)
            loader = DataLoader(DATA["input_h5"], 10, 25)
            losses.append(evaluate_split(model, loader, "val", torch.device(device)))
        check(f"(2) train -seed {seed} -batchnorm -dropout, eval GPU = CPU",
              abs(losses[0] - losses[1]) < 1e-5 and len(result["memory_usage"]) > 0,
              f"{losses[0]:.7f} vs {losses[1]:.7f}")
    runs = {gpu: train_mod.train(**dict(TINY, max_epochs=0.2, seed=1, gpu=gpu,
                                        checkpoint_every=10, checkpoint_name=f"{tmp}/s{gpu}"))
            for gpu in (0, -1)}
    first = [abs(a - b) for a, b in zip(runs[0]["train_loss_history"][:20],
                                        runs[-1]["train_loss_history"][:20])]
    check("(3) -seed 1: first 20 losses GPU = CPU", max(first) < 1e-5, f"max {max(first):.2e}")
    for name, src, dst in (("GPU->GPU", 0, 0), ("GPU->CPU", 0, -1), ("CPU->GPU", -1, 0)):
        resumed = train_mod.train(**dict(TINY, resume_from=f"{tmp}/s{src}_10.t7", gpu=dst,
                                         checkpoint_every=10, checkpoint_name=f"{tmp}/r{dst}"))
        tail = runs[src]["train_loss_history"][10:]
        diff = max(abs(a - b) for a, b in zip(resumed["train_loss_history"][10:], tail))
        check(f"(4) resume {name}", diff < 1e-5, f"max diff {diff:.2e}")


def sampling_gpu_vs_cpu():
    model = load_model(str(GOLDEN / "checkpoints" / "lstm_bn_dropout_cp_159.t7"))
    for start, k in (("", 1), ("The ", 1), ("", 4)):
        texts = []
        for device in ("cpu", "cuda"):
            texts.append(model.to(device).sample(200, start, seed=1, num_samples=k))
        check(f"(5) sample -seed 1 start={start!r} num_samples={k}: GPU text = CPU text",
              texts[0] == texts[1])


@contextlib.contextmanager
def torch_stepper(graphs, made):
    """Sampling through a TorchStepper (CUDA graphs on or off), whatever choose_stepper would
    pick (numpy for one stream of a small model); each stepper made is appended to ``made``."""
    real = sampling.choose_stepper
    sampling.choose_stepper = lambda m, k: made.append(TorchStepper(m, k, graphs)) or made[-1]
    try:
        yield
    finally:
        sampling.choose_stepper = real


def graph_models():
    """LSTM, GRU and RNN 2x128 (seeded weights, the fixture's vocabulary), and the fixture's
    LSTM with batch normalisation and dropout."""
    fixture = load_model(str(GOLDEN / "checkpoints" / "lstm_bn_dropout_cp_159.t7"))
    models = {kind: LanguageModel(fixture.idx_to_token, kind, 32, 128, 2,
                                  generator=TorchGenerator(1)).eval()
              for kind in ("lstm", "gru", "rnn")}
    models["lstm batchnorm"] = fixture
    return models


def graph_against_eager(model, device, K, start, steps=100):
    """Max |graph - eager| of a TorchStepper's scores over ``steps`` random steps from the
    state after ``start``, and the graph stepper's path and capture error."""
    rng = np.random.default_rng(K)
    model.reset_states()
    if start:
        with torch.no_grad():
            model(model.encode(start).view(1, -1).expand(K, -1).to(device))
    eager = TorchStepper(model, K, graphs=False)
    graph = TorchStepper(model, K, graphs=True)
    graph.plan(steps)
    diff = 0.0
    for _ in range(steps):
        ids = rng.integers(1, model.vocab_size + 1, K)
        diff = max(diff, float(np.abs(graph.step(ids) - eager.step(ids)).max()))
    model.reset_states()
    return diff, graph.path, graph.capture_error


def graph_stepper_checks(device):
    """(8) The CUDA-graph stepper: the eager stepper's scores, the CPU's text (the numpy
    stepper), and the graph path ran (``path``); for each model, K = 1 and 64, start text."""
    for name, model in graph_models().items():
        for K in (1, 64):
            for start in ("", "The "):
                cpu_text = model.cpu().sample(150, start, seed=1, num_samples=K)
                made = []
                with torch_stepper(True, made):
                    text = model.to(device).sample(150, start, seed=1, num_samples=K)
                diff, path, error = graph_against_eager(model, device, K, start)
                ran = made[0].path == "graph" and path == "graph"
                check(f"(8) {name} K={K} start={start!r}: CUDA graph = eager, text = CPU text",
                      ran and diff <= 1e-6 and text == cpu_text,
                      f"path {made[0].path}/{path}{' (' + error + ')' if error else ''}, "
                      f"max diff {diff:.1e}, text {'same' if text == cpu_text else 'DIFFERS'}")
        model.cpu()


def graph_speed(model, K=64, length=300):
    """Sampling chars/s with ``K`` streams through the TorchStepper, eagerly and through
    its CUDA graph (the capture's warm-up included), and the path each took."""
    result = {}
    for graphs in (False, True):
        made = []
        with torch_stepper(graphs, made):
            model.sample(20, seed=1, num_samples=K)                     # warm the kernels up
            start = time.perf_counter()
            model.sample(length, seed=1, num_samples=K)
            result[graphs] = (K * length / (time.perf_counter() - start), made[-1].path)
    return result


def charrnn_on_the_gpu(tmp):
    """char-rnn's sampler on -gpuid 0 prints the fixture's bytes; its fast trainer on the GPU
    (float32) follows the CPU's fast trainer in float32."""
    import contextlib
    import io
    for name in ("lstm_2x64", "gru_2x64"):
        raw = io.BytesIO()
        out = io.TextIOWrapper(raw, write_through=True)
        with contextlib.redirect_stdout(out):
            status = charrnn_sample.main([str(CHARRNN / f"{name}.t7"), "-gpuid", "0",
                                          "-verbose", "0", "-length", "300"])
        expected = (CHARRNN / f"{name}.default.txt").read_bytes()
        check(f"(6) charrnn-sample -gpuid 0 {name} = char-rnn's bytes",
              status == 0 and raw.getvalue() == expected)
    data = pathlib.Path(tmp) / "charrnn"
    data.mkdir()
    corpus = ROOT / "torchrnn_py" / "corpus" / "tiny-shakespeare.txt"
    (data / "input.txt").write_bytes(corpus.read_bytes()[:200000])
    losses = {}
    for device, flags in (("gpu", dict(gpuid=0)), ("cpu", dict(gpuid=-1, fast=1))):
        result = train_charrnn(data_dir=str(data), model="lstm", rnn_size=64, batch_size=20,
                               seq_length=50, learning_rate=5e-3, eval_val_every=1000,
                               checkpoint_dir=f"{tmp}/cv_{device}", max_iterations=20,
                               save_checkpoint=lambda path, fields: None, **flags)
        losses[device] = result["train_losses"]
    diff = max(abs(a - b) for a, b in zip(losses["gpu"], losses["cpu"]))
    check("(6) charrnn-train fast: 20 losses GPU = CPU (float32)", diff < 1e-4,
          f"max diff {diff:.2e}")


def lagged_and_streamed(tmp):
    """torchrnn-train on the GPU with the loss read one step late (the default there) prints
    the lines of reading it at once; batches streamed from pinned host memory give the
    losses of data kept on the GPU; and the chars/s of each (2x128, 100 iterations)."""
    real_lag, real_keep = train_mod.loss_lag, DataLoader.keep_on
    runs = {}
    try:
        for name, lag, stream in (("warm-up", True, False), ("at once", False, False),
                                  ("one late", True, False), ("streamed", True, True)):
            train_mod.loss_lag = lambda opt, device, lag=lag: lag
            DataLoader.keep_on = ((lambda self, device: self.stream_to(device)) if stream
                                  else real_keep)
            lines = []
            opts = dict(DATA, rnn_size=128, batch_size=50, seq_length=50, seed=1, gpu=0,
                        max_epochs=100 / 63, print_every=1, checkpoint_every=0,
                        checkpoint_name=f"{tmp}/lag", log=lines.append)
            start = time.perf_counter()
            result = train_mod.train(**opts)
            seconds = time.perf_counter() - start
            runs[name] = lines, result["train_loss_history"]
            if name != "warm-up":
                print(f"speed train 2x128, loss read {name}: "
                      f"{len(result['train_loss_history']) * 2500 / seconds:,.0f} chars/s "
                      f"(whole run, validation included)", flush=True)
    finally:
        train_mod.loss_lag, DataLoader.keep_on = real_lag, real_keep
    check("(7) loss read one step late: the lines of reading it at once",
          runs["one late"][0] == runs["at once"][0] and len(runs["at once"][0]) > 100)
    diff = max(abs(a - b) for a, b in zip(runs["streamed"][1], runs["one late"][1]))
    check("(7) batches streamed from pinned memory: the losses of data kept on the GPU",
          diff < 1e-6, f"max diff {diff:.2e}")


def train_chars_per_second(model, cuda, steps=10):
    """Training chars/s of ``model`` on CUDA: batch 50 x seq 50, Adam, after 2 warm-up steps."""
    optimizer = torch.optim.Adam(model.parameters())
    x = torch.randint(1, model.vocab_size + 1, (50, 50), device=cuda)
    for n in range(steps + 2):
        if n == 2:
            torch.cuda.synchronize()
            start = time.perf_counter()
        optimizer.zero_grad()
        model.loss(model(x), x).backward()
        optimizer.step()
    torch.cuda.synchronize()
    return steps * x.numel() / (time.perf_counter() - start)


def speeds(cuda):
    vocab = {i: chr(32 + i) for i in range(1, 66)}
    for layers, H in ((2, 128), (2, 512), (3, 680)):
        model = LanguageModel(vocab, "lstm", 64, H, layers).to(cuda)
        train_cps = train_chars_per_second(model, cuda)
        start = time.perf_counter()
        model.sample(500, seed=1)
        sample_cps = 500 / (time.perf_counter() - start)
        start = time.perf_counter()
        model.sample(200, seed=1, num_samples=64)
        many = 64 * 200 / (time.perf_counter() - start)
        print(f"speed {layers}x{H}: train {train_cps:,.0f} chars/s; sample {sample_cps:,.0f} "
              f"chars/s (1 stream), {many:,.0f} chars/s (64 streams)", flush=True)
        if (layers, H) == (2, 512):
            (eager, _), (graph, path) = graph_speed(model).values()
            print(f"speed 2x512 sample, 64 streams through the TorchStepper: eager {eager:,.0f} "
                  f"chars/s, CUDA graph {graph:,.0f} chars/s (path {path})", flush=True)
    gru = LanguageModel(vocab, "gru", 64, 512, 2).to(cuda)
    print(f"speed gru 2x512: train {train_chars_per_second(gru, cuda):,.0f} chars/s",
          flush=True)


def main():
    cpu_half()
    if not torch.cuda.is_available():
        print("GPU half skipped: no CUDA device", flush=True)
        return 1 if FAILED else 0
    cuda = torch.device("cuda", 0)
    device_mod.apply_cuda_precision("fp32")
    modules_against_cpu(cuda)
    with tempfile.TemporaryDirectory() as tmp:
        train_eval_resume(tmp)
        charrnn_on_the_gpu(tmp)
        lagged_and_streamed(tmp)
    sampling_gpu_vs_cpu()
    graph_stepper_checks(cuda)
    speeds(cuda)
    print(f"{len(FAILED)} check(s) failed" if FAILED else "all checks passed", flush=True)
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
