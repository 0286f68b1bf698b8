"""Fuzz the Torch7 reader with damaged copies of the real checkpoints.

Every read of a mutated file must either succeed or raise T7FormatError; anything else (an
IndexError, struct.error, MemoryError, a hang...) is an "escape" and a bug: the reader has no
last-resort handler, so a check it fails to make shows up here. Mutations favour the
structural bytes (tags, indices, lengths, sizes, strides), not the float payloads, which any
value survives. Also fuzzes the ASCII and 4-byte-long encodings of a small checkpoint, and
hand-made hostile checkpoints (stride-0 weights, a cyclic or deeply nested ``opt``, a Dropout
``p`` of 1.5). char-rnn's nngraph checkpoints (tests/fixtures/charrnn) and a hand-made node web
(tables keyed by tables, a table keyed by itself) are in the corpus too, with nngraph-shaped
mutations: an object reference index (the web's edges, a table key) retargeted to another
object, to the one being read, or to one not read yet. Every file that reads is then turned
into a model and plain fields as ``load_checkpoint`` does (skip with ``--reader-only``): that
must succeed or raise TorchRNNError (char-rnn files are refused there until they are models).

    python benchmarks/fuzz_t7.py [N] [--seed S] [--reader-only]
"""
import argparse
import collections
import pathlib
import random
import resource
import struct
import sys
import time
import traceback

from mutations import edit_at  # the shared byte damage, beside this script

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from torchrnn_py import checkpoint as ckpt  # noqa: E402
from torchrnn_py import t7  # noqa: E402
from torchrnn_py.errors import TorchRNNError  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
INTERESTING_INT32 = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, -1, -2, 255, 256, 65535, 1 << 20,
                     (1 << 31) - 1, -(1 << 31), 1 << 30]
INTERESTING_INT64 = INTERESTING_INT32 + [1 << 40, 10 ** 12, (1 << 63) - 1, -(1 << 63), 1 << 62]


class Sample:
    """One corpus file, its long size, and the byte ranges that hold raw storage payloads."""

    def __init__(self, name, data, long_size=8):
        self.name, self.data, self.long_size = name, data, long_size
        self.payload, self.references = _payload_spans(data, long_size)
        self.structural = _complement(self.payload, len(data))

    def structural_offset(self, rng):
        start, end = rng.choice(self.structural)
        return rng.randrange(start, end)


def _payload_spans(data, long_size):
    """Where the storages' raw elements lie, and the offsets of the object reference indices
    (found by reading once with a recording source)."""
    spans, references = [], []
    original, original_int32 = t7._BinarySource.array, t7._BinarySource.int32

    def recording(self, dtype, n, what):
        start = self.pos
        out = original(self, dtype, n, what)
        if self.pos - start > 64:
            spans.append((start + 16, self.pos - 16))  # keep the edges structural
        return out

    def recording_int32(self, what):
        if what == "an object reference index":
            references.append(self.pos)
        return original_int32(self, what)

    t7._BinarySource.array, t7._BinarySource.int32 = recording, recording_int32
    try:
        t7.loads_t7(data, long_size=long_size)
    except t7.T7FormatError:
        pass
    finally:
        t7._BinarySource.array, t7._BinarySource.int32 = original, original_int32
    return sorted(spans), references


def _complement(spans, length):
    out, pos = [], 0
    for start, end in spans:
        if start > pos:
            out.append((pos, start))
        pos = max(pos, end)
    if pos < length:
        out.append((pos, length))
    return out or [(0, max(length, 1))]


def mutate(sample, corpus, rng):
    """A damaged copy of ``sample`` and a description of the damage."""
    data = bytearray(sample.data)
    kind = rng.choice(["flip", "flip", "int32", "int32", "int64", "truncate", "insert",
                       "delete", "duplicate", "splice", "uniform_flip", "multi", "retarget"])
    if kind == "retarget" and sample.references:
        return _retarget(data, sample, rng)
    if kind == "multi":
        desc = []
        for _ in range(rng.randint(2, 6)):
            pos = sample.structural_offset(rng)
            if pos < len(data):
                data[pos] = rng.randrange(256)
                desc.append(pos)
        return bytes(data), f"multi-byte changes at {desc}"
    if kind == "uniform_flip":
        pos = rng.randrange(len(data))
        data[pos] ^= 1 << rng.randrange(8)
        return bytes(data), f"bit flip at {pos}"
    pos = sample.structural_offset(rng)
    if kind == "flip":
        n = rng.randint(1, 8)
        for i in range(pos, min(pos + n, len(data))):
            data[i] = rng.randrange(256)
        return bytes(data), f"{n} random bytes at {pos}"
    if kind == "int32":
        value = rng.choice(INTERESTING_INT32)
        data[pos:pos + 4] = struct.pack("<i", value)
        return bytes(data), f"int32 {value} at {pos}"
    if kind == "int64":
        value = rng.choice(INTERESTING_INT64)
        fmt = "<q" if sample.long_size == 8 else "<i"
        value = value if sample.long_size == 8 else max(-(1 << 31), min(value, (1 << 31) - 1))
        data[pos:pos + struct.calcsize(fmt)] = struct.pack(fmt, value)
        return bytes(data), f"long {value} at {pos}"
    edited = edit_at(data, pos, kind, rng)
    if edited is not None:
        return edited
    other = rng.choice(corpus)
    cut = other.structural_offset(rng)
    return bytes(data[:pos]) + other.data[cut:], f"spliced at {pos} with {other.name}[{cut}:]"


def _retarget(data, sample, rng):
    """nngraph-shaped damage: one reference index (a node, a data table used as a key, a
    shared tensor) made to point at another object, itself, or one not read yet."""
    pos = rng.choice(sample.references)
    endian = "<" if data[:4] != b"\x00\x00\x00\x03" else ">"  # big-endian files start so
    (index,) = struct.unpack_from(endian + "i", data, pos)
    value = rng.choice([max(1, index - rng.randint(1, 50)), index + 1, index + rng.randint(2, 99),
                        1, max(1, index - 1), index])
    if value == index:  # a back-reference turned into a fresh object with the next index
        value = index + 1
    struct.pack_into(endian + "i", data, pos, value)
    return bytes(data), f"reference {index} at {pos} retargeted to {value}"


def _node_web():
    """A hand-made nngraph-like web: nodes whose data tables key their children's mapindex."""
    datas = [{"annotations": {"_debugLabel": f"[x]:{i}_"}, "mapindex": {}} for i in range(4)]
    nodes = [t7.TorchObject("nngraph.Node", {"data": d, "id": float(i), "children": {}})
             for i, d in enumerate(datas)]
    for parent, child in ((0, 1), (0, 2), (1, 3), (2, 3)):
        mapindex = datas[child]["mapindex"]
        mapindex[len(mapindex) + 1] = datas[parent]
        mapindex[t7.TableKey(datas[parent])] = float(len(mapindex))
        nodes[parent]["children"][len(nodes[parent]["children"]) + 1] = nodes[child]
    graph = t7.TorchObject("graph.Graph", {"nodes": dict(enumerate(nodes, 1)), "edges": {}})
    root = {"fg": graph, "forwardnodes": dict(enumerate(nodes, 1)),
            "modules": {1: t7.TorchObject("OneHot", {"outputSize": 3.0, "_eye": torch.eye(3)})}}
    root[t7.TableKey(root)] = "self"
    return root


def build_corpus():
    """The real files, plus ASCII / 4-byte-long / hand-made variants of small ones."""
    corpus = []
    paths = sorted((FIXTURES / "legacy").glob("*.t7")) + \
        sorted((FIXTURES / "golden" / "checkpoints").glob("*.t7")) + \
        sorted((FIXTURES / "charrnn").glob("*.t7"))
    for path in paths:
        corpus.append(Sample(path.name, path.read_bytes()))
    small = t7.read_t7(FIXTURES / "golden" / "checkpoints" / "rnn_small_cp_159.t7")
    corpus.append(Sample("rnn_small (4-byte longs)", t7.dumps_t7(small, long_size=4), 4))
    ascii_small = t7.dumps_t7({"opt": small["opt"], "view": small["model"]["net"]["modules"][4],
                              "linear": small["model"]["net"]["modules"][5]},
                              mode="ascii")
    corpus.append(Sample("rnn_small parts (ASCII)", ascii_small))
    shared = {"f": t7.LuaFunction(b"\x1bLJ\x02bytecode", [{"name": "x", "id": 1.0}]),
              "list": [1, "two", None, True], "bytes": b"\xff\x00\xfe"}
    shared["self"] = shared
    corpus.append(Sample("hand-made", t7.dumps_t7(shared)))
    corpus.append(Sample("hand-made node web", t7.dumps_t7(_node_web())))
    for name, root in _hostile_checkpoints(small):
        corpus.append(Sample(name, t7.dumps_t7(root)))
    return corpus


def _hostile_checkpoints(small):
    """(name, root) pairs: the small checkpoint with one hostile change each."""
    def variant(change):
        root = t7.loads_t7(t7.dumps_t7(small))          # a fresh copy
        change(root)
        return root

    def stride0(root):
        for module in root["model"]["net"]["modules"].values():
            weight = module.get("weight") if isinstance(module, t7.TorchObject) else None
            if isinstance(weight, torch.Tensor) and weight.dim() == 2:
                module.fields["weight"] = torch.zeros(1).expand(weight.shape[0], 4000)

    def cyclic(root):
        root["opt"]["self"] = root["opt"]

    def deep(root):
        leaf = root["opt"]
        for _ in range(3000):
            leaf["next"] = {}
            leaf = leaf["next"]

    def dropout(root):
        root["model"]["net"]["modules"][3] = t7.TorchObject("nn.Dropout", {"p": 1.5})

    return [(f"hostile ({c.__name__})", variant(c)) for c in (stride0, cyclic, deep, dropout)]


def _as_checkpoint(root, name):
    """What load_checkpoint does after reading; True when a checkpoint came out."""
    ckpt.checkpoint_from_t7(root, name)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("iterations", type=int, nargs="?", default=20000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reader-only", action="store_true",
                        help="only read the files, do not build models from them")
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    corpus = build_corpus()
    counts = collections.Counter()
    messages = collections.Counter()
    escapes = []
    slowest = (0.0, "")
    started = time.time()
    for i in range(args.iterations):
        sample = rng.choice(corpus)
        data, desc = mutate(sample, corpus, rng)
        t0 = time.perf_counter()
        try:
            root = t7.loads_t7(data, long_size=sample.long_size)
            counts["success"] += 1
            if not args.reader_only:
                try:
                    _as_checkpoint(root, sample.name)
                    counts["checkpoint"] += 1
                except t7.T7FormatError:
                    raise
                except TorchRNNError as err:
                    counts["checkpoint refused"] += 1
                    messages["(checkpoint) " + " ".join(str(err).split(": ")[-1].split()[:4])] \
                        += 1
        except t7.T7FormatError as err:
            text = str(err).split(": ", 2)[-1]
            counts["clean error"] += 1
            messages[" ".join(text.split()[:4])] += 1
        except BaseException as err:  # noqa: BLE001 - exactly what we are hunting
            if isinstance(err, KeyboardInterrupt):
                raise
            counts["ESCAPE"] += 1
            if len(escapes) < 20:
                escapes.append((sample.name, desc, type(err).__name__, str(err)[:200],
                                traceback.format_exc(limit=-3)))
        elapsed = time.perf_counter() - t0
        if elapsed > slowest[0]:
            slowest = (elapsed, f"{sample.name}: {desc}")
        if (i + 1) % 5000 == 0:
            print(f"  {i + 1} iterations, {dict(counts)}", flush=True)

    print(f"{args.iterations} mutated reads in {time.time() - started:.1f} s "
          f"(seed {args.seed}, {len(corpus)} corpus files)")
    for key in ("success", "clean error", "ESCAPE", "checkpoint",
                "checkpoint refused"):
        print(f"  {key:12s} {counts[key]}")
    print(f"  slowest read {slowest[0] * 1000:.1f} ms ({slowest[1]})")
    print(f"  peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")
    print("  most common errors:")
    for text, n in messages.most_common(12):
        print(f"    {n:6d}  {text} ...")
    for name, desc, kind, message, tb in escapes:
        print(f"ESCAPE from {name} ({desc}): {kind}: {message}\n{tb}")
    return 1 if escapes else 0


if __name__ == "__main__":
    sys.exit(main())
