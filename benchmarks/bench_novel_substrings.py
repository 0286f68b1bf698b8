"""Benchmark our novel_substrings against the original's quadratic algorithm.

Not a test. Training text: tiny-shakespeare (1.1 MB). Sampled text: a stand-in for a char-rnn
sample, made by an order-``--order`` character Markov chain fitted to tiny-shakespeare (it
copies short stretches of the training text and invents longer ones, as a trained model does),
2,000 characters and 100,000 characters long.

The original (``scripts/novel_substrings.py``) asks ``sub in training`` for every start
position and every L = 1..49, transcribed below. Running it all takes about 20 seconds for the
2,000-character sample and about 20 minutes for the 100,000-character one (2-core build
machine), so by default it is timed in full for L = 1..5 only (its numbers are checked against
ours) and estimated for all 49 lengths by timing a random subset of start positions at every L
and scaling up: lookups get slower as L grows (novel substrings scan the whole training text),
so L = 1..5 alone would underestimate it. ``--full-original`` runs it in full on the 2,000-character sample instead
and checks all 49 lines.

    python benchmarks/bench_novel_substrings.py [--order 6] [--per-length 60] [--full-original]
"""
import argparse
import pathlib
import random
import statistics
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from torchrnn_py.novel_substrings import novel_fractions, read_text  # noqa: E402

SHAKESPEARE = REPO / "torchrnn_py" / "corpus" / "tiny-shakespeare.txt"
MAX_LENGTH = 49


def original_algorithm(s1, s2, lengths):
    """The original's loops, as they are, for the given lengths: [(L, fraction), ...]."""
    out = []
    for length in lengths:
        num_searched = 0
        num_found = 0
        for i in range(len(s1) - length + 1):
            num_searched += 1
            sub = s1[i:(i + length)]
            if sub in s2:
                num_found += 1
        out.append((length, (num_searched - num_found) / float(num_searched)))
    return out


def estimate_original_seconds(s1, s2, per_length, seed=0):
    """Estimated run time of the whole original: time ``per_length`` random start positions'
    lookups at each L and scale by the number of positions at that L."""
    rng = random.Random(seed)
    total = 0.0
    for length in range(1, MAX_LENGTH + 1):
        positions = len(s1) - length + 1
        chosen = rng.sample(range(positions), min(per_length, positions))
        subs = [s1[i:i + length] for i in chosen]
        start = time.perf_counter()
        for sub in subs:
            sub in s2  # noqa: B015 -- the original's test, timed
        total += (time.perf_counter() - start) * positions / len(chosen)
    return total


def markov_sample(text, length, order, seed):
    """``length`` characters from an order-``order`` character Markov chain fitted to text."""
    rng = random.Random(seed)
    followers = {}
    for i in range(len(text) - order):
        followers.setdefault(text[i:i + order], []).append(text[i + order])
    start = rng.randrange(len(text) - order)
    out = list(text[start:start + order])
    while len(out) < length:
        nexts = followers.get("".join(out[-order:]))
        if nexts is None:  # the file's last context: restart somewhere
            start = rng.randrange(len(text) - order)
            out.extend(text[start:start + order])
        else:
            out.append(rng.choice(nexts))
    return "".join(out[:length])


def time_ours(sampled, training, repeats):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = novel_fractions(sampled, training, MAX_LENGTH)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def show(result, every=8):
    return ", ".join(f"L={L}: {frac:.4f}" for L, frac in result if L == 1 or L % every == 0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--order", type=int, default=6)
    parser.add_argument("--per-length", type=int, default=60,
                        help="start positions timed per L for the original's estimate")
    parser.add_argument("--full-original", action="store_true",
                        help="run the original's whole algorithm on the 2,000-char sample")
    args = parser.parse_args(argv)

    training = read_text(str(SHAKESPEARE), "training text file")
    print(f"training: tiny-shakespeare, {len(training):,} characters")
    start = time.perf_counter()
    samples = {n: markov_sample(training, n, args.order, seed=n) for n in (2_000, 100_000)}
    print(f"samples: order-{args.order} Markov chain, made in "
          f"{time.perf_counter() - start:.1f} s")

    for n, sampled in samples.items():
        ours_s, ours = time_ours(sampled, training, repeats=7 if n <= 2_000 else 5)
        print(f"\n== sample of {n:,} characters ==")
        print(f"ours, L=1..{MAX_LENGTH}: {ours_s:.3f} s (median)   {show(ours)}")
        estimate = estimate_original_seconds(sampled, training, args.per_length)
        print(f"original, L=1..{MAX_LENGTH}: ~{estimate:.0f} s ESTIMATED ({args.per_length} "
              f"random start positions timed per L, scaled up) -> ours is "
              f"~{estimate / ours_s:,.0f}x faster")
        if n > 2_000:
            continue
        lengths = range(1, MAX_LENGTH + 1) if args.full_original else range(1, 6)
        start = time.perf_counter()
        theirs = original_algorithm(sampled, training, lengths)
        theirs_s = time.perf_counter() - start
        agree = theirs == ours[:len(theirs)]
        print(f"original, L={lengths[0]}..{lengths[-1]} run in full (MEASURED): "
              f"{theirs_s:.2f} s; identical fractions: {agree}")
        if not agree:
            print("MISMATCH:", [(a, b) for a, b in zip(theirs, ours) if a != b][:5])
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
