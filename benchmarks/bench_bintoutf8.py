"""Time the BinToUTF8 file codec: encode and decode, both modes, random and audio-like data.

Not a test. Writes its inputs to a temporary directory (or --dir), runs
``encode_file``/``decode_file`` on each, checks the round trip, and prints MB/s each way
(MB = 10**6 bytes of the binary file) and the process's peak RSS.

    python benchmarks/bench_bintoutf8.py [--random-mb 100] [--audio-mb 20] [--dir DIR]
"""
import argparse
import hashlib
import os
import resource
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from torchrnn_py.bintoutf8 import decode_file, encode_file  # noqa: E402


def peak_rss_mib():
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 if sys.platform != "darwin" else kib / 2 ** 20


def write_random(path, n_bytes, seed=0, block=1 << 20):
    """Uniform random bytes: every value appears at once, 64% of characters are 3 bytes."""
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        for start in range(0, n_bytes, block):
            f.write(rng.integers(0, 256, min(block, n_bytes - start), dtype=np.uint8).tobytes())


def write_audio_like(path, n_bytes, rate=11025, seed=1, block=1 << 20):
    """Unsigned 8-bit PCM: a wandering sine (voice-ish pitch) plus noise, silence = 0x80."""
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        for start in range(0, n_bytes, block):
            t = np.arange(start, min(start + block, n_bytes)) / rate
            signal = 60 * np.sin(2 * np.pi * (180 + 40 * np.sin(2 * np.pi * 0.3 * t)) * t)
            signal += rng.normal(0, 6, t.size)
            f.write(np.clip(np.round(128 + signal), 0, 255).astype(np.uint8).tobytes())


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def bench(name, path, mode, workdir):
    size = os.path.getsize(path)
    text = os.path.join(workdir, f"{name}.{mode}.txt")
    back = os.path.join(workdir, f"{name}.{mode}.bin")
    t0 = time.perf_counter()
    result = encode_file(path, text, mode=mode)
    t1 = time.perf_counter()
    unknown = decode_file(text, back, mode=mode)
    t2 = time.perf_counter()
    ok = unknown == 0 and digest(path) == digest(back)
    print(f"{name:6s} {mode:6s} {size / 1e6:7.1f} MB  text {result.text_bytes / 1e6:7.1f} MB  "
          f"encode {size / 1e6 / (t1 - t0):7.1f} MB/s  decode {size / 1e6 / (t2 - t1):7.1f} MB/s  "
          f"round trip {'ok' if ok else 'FAILED'}  peak RSS {peak_rss_mib():6.1f} MiB",
          flush=True)
    for p in (text, back, result.table_path):
        if p:
            os.unlink(p)
    os.sync()
    return ok


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random-mb", type=float, default=100)
    parser.add_argument("--audio-mb", type=float, default=20)
    parser.add_argument("--dir", help="where to put the files (default: a temporary folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as workdir:
        random_path = os.path.join(workdir, "random.raw")
        audio_path = os.path.join(workdir, "audio.raw")
        write_random(random_path, int(args.random_mb * 1e6))
        write_audio_like(audio_path, int(args.audio_mb * 1e6))
        os.sync()  # the inputs' writeback must not land inside the first timing
        print(f"python {sys.version.split()[0]}, numpy {np.__version__}, "
              f"{os.cpu_count()} CPUs; peak RSS after writing inputs {peak_rss_mib():.1f} MiB")
        ok = True
        for name, path in (("random", random_path), ("audio", audio_path)):
            for mode in ("bcl", "offset"):
                ok &= bench(name, path, mode, workdir)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
