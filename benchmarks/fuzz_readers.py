"""Fuzz the input readers other than .t7: vocabulary JSON, checkpoint JSON, HDF5 data, .bcl.

Every read of a damaged file must either succeed or raise TorchRNNError (one clear line);
anything else is an "escape" and a bug: another exception type, a hang (more than
``--timeout`` seconds), a crash of the process (libhdf5 is C), or a read that ran out of
memory. Counted apart as "safety net": TorchRNNErrors that only the HDF5 reader's
last-resort handler produced (an h5py exception other than OSError turned into one line):
clean for the user, but worth a look.

    python benchmarks/fuzz_readers.py [N] [--seed S] [--only vocab,ckpt_json,hdf5,bcl]
                                      [--keep DIR]

N is the number of damaged files per reader. The HDF5 files are read by worker processes
(batches of files, an address-space limit and a per-file alarm), so that a crash or a hang
of libhdf5 is seen and reported with the file that caused it (kept under --keep).
"""
import argparse
import collections
import json
import os
import pathlib
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

from mutations import edit_at  # the shared byte damage, beside this script

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOLDEN = ROOT / "tests" / "fixtures" / "golden"
PREPROCESS = ROOT / "tests" / "fixtures" / "preprocess"
VOCAB_FILES = [GOLDEN / "shakespeare200k.json", PREPROCESS / "li_qing_zhao.json"]
CKPT_JSON_FILES = [GOLDEN / "checkpoints" / "lstm_small_cp_100.json",
                   GOLDEN / "checkpoints" / "lstm_bn_dropout_cp_159.json"]
H5_FILES = [GOLDEN / "shakespeare200k.h5", PREPROCESS / "li_qing_zhao.h5"]

INTERESTING_JSON = [b"0", b"-1", b"1.5", b"1e999", b"-1e999", b"NaN", b"Infinity", b"true",
                    b"null", b'""', b'"x"', b"[]", b"{}", b'{"1":"a"}', b"[[[[[[[[]]]]]]]]",
                    b"9" * 30, b"9" * 5000, b'"\\ud800"', b'"\\u0000"', b'"1"', b"1.0",
                    b"4294967297", b"[" * 5000, b"{" * 3000]
INTERESTING_INTS = [0, 1, 2, 255, 256, 65535, (1 << 31) - 1, 1 << 32, (1 << 63) - 1,
                    (1 << 64) - 1, 10 ** 12, 1 << 40]


# --------------------------------------------------------------------------- mutations

def mutate_bytes(data, rng, hot=None, corpus=()):
    """A damaged copy of ``data`` and what was done. ``hot``: (start, end) ranges where
    the structure lies (mutations prefer them)."""
    data = bytearray(data)

    def offset():
        if hot and rng.random() < 0.9:
            start, end = rng.choice(hot)
            return rng.randrange(start, max(end, start + 1))
        return rng.randrange(max(len(data), 1))

    kind = rng.choice(["flip", "bytes", "int", "truncate", "insert", "delete", "duplicate",
                       "splice", "multi"])
    pos = min(offset(), len(data))
    if kind == "flip" and data:
        pos = min(pos, len(data) - 1)
        data[pos] ^= 1 << rng.randrange(8)
        return bytes(data), f"bit flip at {pos}"
    if kind == "bytes":
        n = rng.randint(1, 8)
        data[pos:pos + n] = bytes(rng.randrange(256) for _ in range(n))
        return bytes(data), f"{n} random bytes at {pos}"
    if kind == "int":
        value, width = rng.choice(INTERESTING_INTS), rng.choice([1, 2, 4, 8])
        value &= (1 << (8 * width)) - 1
        data[pos:pos + width] = value.to_bytes(width, "little")
        return bytes(data), f"{width}-byte {value} at {pos}"
    edited = edit_at(data, pos, kind, rng)
    if edited is not None:
        return edited
    if kind == "splice" and corpus:
        other = rng.choice(corpus)
        cut = rng.randrange(max(len(other), 1))
        return bytes(data[:pos]) + other[cut:], f"spliced at {pos} with another file[{cut}:]"
    changes = []
    for _ in range(rng.randint(2, 6)):
        p = min(offset(), len(data) - 1)
        if p >= 0:
            data[p] = rng.randrange(256)
            changes.append(p)
    return bytes(data), f"bytes changed at {changes}"


def mutate_json(data, rng, corpus=()):
    """Damage a JSON file: byte-level, or token-level (a value, key or bracket replaced by
    an interesting JSON text, a key duplicated, deep nesting), or structural (parse, change
    one value, serialise again)."""
    kind = rng.random()
    if kind < 0.35:
        return mutate_bytes(data, rng, corpus=corpus)
    if kind < 0.75:
        # token level: replace a short span at a syntax character by an interesting text
        positions = [i for i, b in enumerate(data) if b in b'{}[]:,"0123456789']
        pos = rng.choice(positions) if positions else 0
        patch = rng.choice(INTERESTING_JSON)
        n = rng.randint(0, 6)
        out = data[:pos] + patch + data[pos + n:]
        return out, f"{data[pos:pos + n]!r} at {pos} replaced by {patch[:20]!r}"
    try:
        value = json.loads(data)
    except ValueError:
        return mutate_bytes(data, rng, corpus=corpus)
    path, new = _mutate_value(value, rng)
    text = json.dumps(value, ensure_ascii=rng.random() < 0.5)
    if rng.random() < 0.2 and isinstance(value, dict) and value:
        key = rng.choice(list(value))
        # a key given twice (json.dumps cannot write that)
        text = text[:-1] + ", " + json.dumps(key) + ": " + json.dumps(value[key]) + "}"
        path += f" and key {key!r} duplicated"
    return text.encode("utf-8", "surrogatepass"), f"{path} := {str(new)[:40]}"


def _random_value(rng, depth=0):
    choice = rng.randrange(12)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice(INTERESTING_INTS + [-1, -(1 << 63)])
    if choice == 3:
        return rng.choice([0.5, -0.0, 1e308, float("inf"), float("nan"), 2.0, 1e-300])
    if choice == 4:
        return rng.choice(["", "a", "ab", "[300]", "[12]", "\ud800", "\x00", "é", "\U0001F600"])
    if choice == 5 and depth < 3:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if choice == 6 and depth < 3:
        return {str(rng.randint(0, 5)): _random_value(rng, depth + 1)
                for _ in range(rng.randint(0, 3))}
    if choice == 7:
        return str(rng.choice(INTERESTING_INTS))
    return rng.randint(-3, 100)


def _mutate_value(value, rng):
    """Replace, delete or add one element somewhere in a parsed JSON value (in place)."""
    path = "$"
    node = value
    while True:
        if isinstance(node, dict) and node and rng.random() < 0.7:
            key = rng.choice(list(node))
            if isinstance(node[key], (dict, list)) and node[key] and rng.random() < 0.6:
                node, path = node[key], f"{path}.{key}"
                continue
            action = rng.randrange(3)
            if action == 0:
                node[key] = new = _random_value(rng)
                return f"{path}.{key}", new
            if action == 1:
                del node[key]
                return f"{path}.{key} deleted", None
            new_key = rng.choice(["0", "-1", "01", "1.0", "99999", " 1", key + "x"])
            node[new_key] = new = node.pop(key)
            return f"{path}.{key} renamed {new_key!r}", new
        if isinstance(node, list) and node and rng.random() < 0.7:
            k = rng.randrange(len(node))
            if isinstance(node[k], (dict, list)) and node[k] and rng.random() < 0.6:
                node, path = node[k], f"{path}[{k}]"
                continue
            node[k] = new = _random_value(rng)
            return f"{path}[{k}]", new
        new = _random_value(rng)
        if isinstance(node, dict):
            node[rng.choice(["1", "x", "idx_to_token", "token_to_idx", "i", "opt"])] = new
        elif isinstance(node, list):
            node.append(new)
        return f"{path} (added)", new


# --------------------------------------------------------------------------- HDF5 corpus

def build_h5_corpus(directory):
    """The real HDF5 fixtures plus small variants that exercise more of libhdf5: chunked,
    compressed, shuffled and checksummed datasets, a user block, uint32 ids."""
    import h5py
    import numpy as np

    paths = list(H5_FILES)
    with h5py.File(H5_FILES[0], "r") as f:
        ids = {name: f[name][:2000] for name in ("train", "val", "test")}
    variants = {
        "small_contiguous": {},
        "small_chunked_gzip": dict(chunks=(256,), compression="gzip", shuffle=True),
        "small_chunked_fletcher": dict(chunks=(300,), fletcher32=True, maxshape=(None,)),
        "small_lzf_uint32": dict(chunks=(128,), compression="lzf"),
    }
    for name, options in variants.items():
        path = pathlib.Path(directory) / f"{name}.h5"
        kwargs = {"userblock_size": 512} if name == "small_contiguous" else {}
        with h5py.File(path, "w", **kwargs) as f:
            for split, data in ids.items():
                data = data.astype(np.uint32) if "uint32" in name else data
                f.create_dataset(split, data=data, **options)
        paths.append(path)
    return [(p.name, p.read_bytes(), _h5_structure(p), _h5_lengths(p)) for p in paths]


def mutate_h5(data, rng, hot, lengths, corpus=()):
    """Byte damage in the metadata, or the dimensions: every 8-byte copy of a dataset's
    length (its dims and max dims) set to one interesting value."""
    if rng.random() < 0.2 and lengths:
        length = rng.choice(lengths)
        value = rng.choice([10 ** 12, (1 << 63) - 1, (1 << 64) - 1, 1 << 40, length + 1,
                            length * 2, 0, 1, len(data), 1 << 32])
        old, new = length.to_bytes(8, "little"), value.to_bytes(8, "little")
        spots = [i for i in range(len(data) - 7) if data[i:i + 8] == old]
        chosen = [i for i in spots if rng.random() < 0.7] or spots[:1]
        out = bytearray(data)
        for i in chosen:
            out[i:i + 8] = new
        return bytes(out), f"length {length} at {chosen} set to {value}"
    return mutate_bytes(data, rng, hot, corpus)


def _h5_lengths(path):
    import h5py

    with h5py.File(path, "r") as f:
        return sorted({f[name].shape[0] for name in f} |
                      {c for name in f for c in (f[name].chunks or ())})


def _h5_structure(path):
    """Byte ranges of an HDF5 file that are not raw token data (its metadata)."""
    import h5py

    size = os.path.getsize(path)
    raw = []
    with h5py.File(path, "r") as f:
        for name in f:
            dsid = f[name].id
            offset = dsid.get_offset()
            if offset is not None:
                raw.append((offset + 16, offset + dsid.get_storage_size() - 16))
            elif f[name].chunks:
                for k in range(dsid.get_num_chunks()):
                    info = dsid.get_chunk_info(k)
                    raw.append((info.byte_offset + 8, info.byte_offset + info.size - 8))
    hot, pos = [], 0
    for start, end in sorted(raw):
        if start > pos:
            hot.append((pos, start))
        pos = max(pos, end)
    if pos < size:
        hot.append((pos, size))
    return hot


# --------------------------------------------------------------------------- running reads

class _Timeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _Timeout


def classify(call, path, timeout=None):
    """Run ``call(path)``: ('success'|'clean error'|'safety net'|'ESCAPE', detail).
    ``timeout``: seconds before a Python-level alarm calls it a hang (None: the caller
    watches the time itself)."""
    from torchrnn_py.data import H5PY_ERRORS
    from torchrnn_py.errors import TorchRNNError

    old = signal.signal(signal.SIGALRM, _alarm) if timeout else None
    if timeout:
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        call(path)
        return "success", ""
    except TorchRNNError as err:
        message = str(err)
        context = err.__context__
        if "\n" in message or not message.startswith(str(path)):
            return "ESCAPE", f"TorchRNNError not one line naming the file: {message[:200]!r}"
        if "not enough memory" in message:
            return "ESCAPE", f"ran out of memory instead of refusing early: {message[:200]}"
        if context is not None and "HDF5" in message and \
                not isinstance(context, H5PY_ERRORS + (TorchRNNError,)):
            return "safety net", f"{type(context).__name__}: {message[:160]}"
        return "clean error", message
    except _Timeout:
        return "ESCAPE", f"hang: no answer in {timeout} s"
    except Exception as err:  # noqa: BLE001 - exactly what we are hunting
        return "ESCAPE", f"{type(err).__name__}: {str(err)[:200]}\n" + \
            traceback.format_exc(limit=-3)
    finally:
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)


def h5_worker(paths, timeout):
    """Worker process: read each HDF5 file, print one JSON line per file. A per-file
    SIGALRM with the default action kills the process on a hang inside libhdf5."""
    from torchrnn_py.data import read_splits

    limit = 4 << 30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    for path in paths:
        print(json.dumps({"start": path}), flush=True)
        signal.alarm(max(1, int(timeout)))    # stuck (even inside libhdf5): SIGALRM kills us
        outcome, detail = classify(read_splits, path)
        signal.alarm(0)
        print(json.dumps({"path": path, "outcome": outcome, "detail": detail}), flush=True)


def run_h5_batch(paths, timeout):
    """Read ``paths`` in worker processes; yields (path, outcome, detail) for each, with
    crashes and hangs of the worker reported against the file being read."""
    pending = list(paths)
    while pending:
        proc = subprocess.Popen([sys.executable, __file__, "--h5-worker", str(timeout)]
                                + pending, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=ROOT)
        current, done = None, set()
        try:
            out, err = proc.communicate(timeout=timeout * (len(pending) + 2) + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        for line in out.splitlines():
            record = json.loads(line)
            if "start" in record:
                current = record["start"]
            else:
                done.add(record["path"])
                yield record["path"], record["outcome"], record["detail"]
        rest = [p for p in pending if p not in done]
        if not rest:
            return
        if current is None or current in done:
            raise RuntimeError(f"HDF5 worker failed before reading (status "
                               f"{proc.returncode}): {err[-2000:]}")
        status = proc.returncode
        what = (f"hang: killed by the {timeout} s alarm" if status == -signal.SIGALRM else
                f"CRASH: worker killed by signal {-status}" if status and status < 0 else
                f"worker exited with status {status}: {err.strip()[-300:]}")
        yield current, "ESCAPE", what
        pending = rest[rest.index(current) + 1:] if current in rest else rest


# --------------------------------------------------------------------------- main

def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--h5-worker"]:
        h5_worker(argv[2:], float(argv[1]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("iterations", type=int, nargs="?", default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", default="vocab,ckpt_json,hdf5,bcl")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--keep", default=str(ROOT / "benchmarks" / "fuzz_findings"),
                        help="where files that escaped are copied")
    args = parser.parse_args(argv)

    from torchrnn_py import bintoutf8
    from torchrnn_py.checkpoint import read_checkpoint_json
    from torchrnn_py.vocab import read_vocab

    rng = random.Random(args.seed)
    only = set(args.only.split(","))
    work = pathlib.Path(tempfile.mkdtemp(prefix="fuzz_readers."))
    escapes = []
    totals = {}
    started = time.time()
    try:
        def report(reader, counts, messages, seconds):
            totals[reader] = counts
            print(f"{reader}: {sum(counts.values())} damaged files in {seconds:.1f} s: "
                  + ", ".join(f"{k} {counts[k]}" for k in
                              ("success", "clean error", "safety net", "ESCAPE")), flush=True)
            for text, n in messages.most_common(6):
                print(f"    {n:6d}  {text}")

        def keep(reader, data, desc, outcome, detail):
            escapes.append((reader, desc, outcome, detail))
            keep_dir = pathlib.Path(args.keep)
            keep_dir.mkdir(parents=True, exist_ok=True)
            name = keep_dir / f"{reader}_{len(escapes)}.bin"
            name.write_bytes(data)
            print(f"  ESCAPE ({reader}, {desc}) kept as {name}: {detail}", flush=True)

        def short(message, path):
            text = message.replace(str(path), "<file>")
            return " ".join(text.split()[:7])

        in_process = [("vocab", read_vocab, [p.read_bytes() for p in VOCAB_FILES], ".json"),
                      ("ckpt_json", read_checkpoint_json,
                       [p.read_bytes() for p in CKPT_JSON_FILES], ".json")]
        for reader, call, corpus, suffix in in_process:
            if reader not in only:
                continue
            counts, messages, t0 = collections.Counter(), collections.Counter(), time.time()
            path = work / f"{reader}{suffix}"
            slowest = (0.0, "")
            for _ in range(args.iterations):
                data, desc = mutate_json(rng.choice(corpus), rng, corpus)
                path.write_bytes(data)
                t1 = time.perf_counter()
                outcome, detail = classify(call, path, args.timeout)
                if time.perf_counter() - t1 > slowest[0]:
                    slowest = (time.perf_counter() - t1, desc)
                counts[outcome] += 1
                if outcome == "clean error":
                    messages[short(detail, path)] += 1
                if outcome in ("ESCAPE", "safety net"):
                    keep(reader, data, desc, outcome, detail)
            report(reader, counts, messages, time.time() - t0)
            print(f"    slowest read {slowest[0] * 1000:.1f} ms ({slowest[1][:80]})")

        if "bcl" in only:
            counts, messages, t0 = collections.Counter(), collections.Counter(), time.time()
            table = bytes(range(256))
            corpus = [table, bytes(rng.sample(range(256), 256))]
            path = work / "table.bcl"
            for _ in range(args.iterations):
                base = rng.choice(corpus)
                if rng.random() < 0.3:      # a permutation with two entries swapped: valid
                    perm = bytearray(base)
                    a, b = rng.randrange(256), rng.randrange(256)
                    perm[a], perm[b] = perm[b], perm[a]
                    data, desc = bytes(perm), f"slots {a} and {b} swapped"
                else:
                    data, desc = mutate_bytes(base, rng, corpus=corpus)
                path.write_bytes(data)
                outcome, detail = classify(bintoutf8.read_table, str(path), args.timeout)
                counts[outcome] += 1
                if outcome == "clean error":
                    messages[short(detail, path)] += 1
                if outcome in ("ESCAPE", "safety net"):
                    keep("bcl", data, desc, outcome, detail)
            report("bcl", counts, messages, time.time() - t0)

        if "hdf5" in only:
            counts, messages, t0 = collections.Counter(), collections.Counter(), time.time()
            corpus = build_h5_corpus(work)
            datas = {}
            batch = []
            for k in range(args.iterations):
                name, base, hot, lengths = rng.choice(corpus)
                data, desc = mutate_h5(base, rng, hot, lengths, [c[1] for c in corpus])
                path = str(work / f"h5_{k}.h5")
                pathlib.Path(path).write_bytes(data)
                datas[path] = (data, f"{name}: {desc}")
                batch.append(path)
                if len(batch) == 250 or k == args.iterations - 1:
                    for p, outcome, detail in run_h5_batch(batch, args.timeout):
                        counts[outcome] += 1
                        if outcome == "clean error":
                            messages[short(detail, p)] += 1
                        if outcome in ("ESCAPE", "safety net"):
                            keep("hdf5", *datas[p], outcome, detail)
                    for p in batch:
                        os.unlink(p)
                        datas.pop(p, None)
                    batch = []
            report("hdf5", counts, messages, time.time() - t0)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"total {time.time() - started:.1f} s, seed {args.seed}; "
          f"{sum(c['ESCAPE'] for c in totals.values())} escapes, "
          f"{sum(c['safety net'] for c in totals.values())} caught only by the safety net")
    for reader, desc, outcome, detail in escapes[:30]:
        print(f"{outcome} in {reader} ({desc}): {detail}")
    return 1 if any(c["ESCAPE"] for c in totals.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
