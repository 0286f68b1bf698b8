"""Torch7's random number generator, reproduced with numpy, so that ``-seed N`` means
exactly what ``torch.manualSeed(N)`` meant to the original torch-rnn.

Torch7 (lib/TH/THRandom.c) uses MT19937 seeded with ``init_genrand(seed & 0xffffffff)``.
On top of its 32-bit outputs:

- ``uniform(a, b)`` is ``random() / 2**32 * (b - a) + a`` (one draw, 32 bits only);
- ``normal(mean, std)`` is Box-Muller on two uniforms ``x, y`` with
  ``rho = sqrt(-2 log(1 - y))``: the first call returns ``rho cos(2 pi x) std + mean`` and
  caches ``x, rho``; the next returns ``rho sin(2 pi x) std + mean`` (with that call's own
  mean and std). Reseeding clears the cache;
- ``bernoulli(p)`` is ``uniform() <= p``;
- ``multinomial(p, 1)`` takes the running sum of ``p`` in double, divides it by the total,
  forces the last entry to 1, draws one uniform ``u`` and returns the first index whose
  cumulative value is ``>= u``.

Tensor fills (``tensor:normal()``, ``:uniform()``, ``:bernoulli()``) draw one value per
element in row-major order, computed in double and then stored in the tensor's type.
"""
import os

import numpy as np

_MT_N = 624
_TWO_PI = 2.0 * np.pi
_INV_2_32 = 1.0 / 4294967296.0


def _init_genrand(seed):
    """The 624-word MT19937 state of Matsumoto and Nishimura's ``init_genrand``."""
    state = np.empty(_MT_N, dtype=np.uint32)
    value = seed & 0xFFFFFFFF
    state[0] = value
    for j in range(1, _MT_N):
        value = (1812433253 * (value ^ (value >> 30)) + j) & 0xFFFFFFFF
        state[j] = value
    return state


def os_seed():
    """A seed from the operating system, as Torch7 takes one from /dev/urandom."""
    return int.from_bytes(os.urandom(8), "little")


class TorchGenerator:
    """A stateful stand-in for Torch7's default generator (see the module docstring).

    All draws return float64 numpy arrays (or a Python float for a single value); callers
    cast them to the tensor type, as Torch7 does when it stores into a float tensor.
    """

    def __init__(self, seed=None):
        self.manual_seed(os_seed() if seed is None else seed)

    def manual_seed(self, seed):
        """Reset the stream as ``torch.manualSeed(seed)`` does (the normal cache too)."""
        self.initial_seed = int(seed)
        self._bits = np.random.MT19937()
        self._bits.state = {"bit_generator": "MT19937",
                            "state": {"key": _init_genrand(self.initial_seed), "pos": _MT_N}}
        self._normal_cache = None  # (x, rho) of a half-used Box-Muller pair

    # -- state, for exact resume -------------------------------------------------------
    def get_state(self):
        """A plain-data snapshot: seed, MT19937 key and position, Box-Muller cache."""
        st = self._bits.state["state"]
        cache = None if self._normal_cache is None else [float(v) for v in self._normal_cache]
        return {"seed": self.initial_seed, "key": np.asarray(st["key"], dtype=np.uint32).copy(),
                "pos": int(st["pos"]), "normal_cache": cache}

    def set_state(self, state):
        """Restore a snapshot made by :meth:`get_state`."""
        key = np.asarray(state["key"], dtype=np.uint32)
        if key.shape != (_MT_N,) or not 0 <= int(state["pos"]) <= _MT_N:
            raise ValueError("not a Torch7 generator state (expected 624 words and a position)")
        self.initial_seed = int(state["seed"])
        self._bits = np.random.MT19937()
        self._bits.state = {"bit_generator": "MT19937",
                            "state": {"key": key, "pos": int(state["pos"])}}
        cache = state.get("normal_cache")
        self._normal_cache = None if cache is None else (float(cache[0]), float(cache[1]))

    # -- draws ------------------------------------------------------------------------
    def random(self, n=None):
        """Raw 32-bit outputs (``torch.random()``), as uint64 values."""
        out = self._bits.random_raw(1 if n is None else n)
        return int(out[0]) if n is None else out

    def uniform(self, n=None, a=0.0, b=1.0):
        """``n`` values of ``torch.uniform(a, b)``: ``random() / 2**32 * (b - a) + a``."""
        u = self._bits.random_raw(1 if n is None else n) * _INV_2_32
        if a != 0.0 or b != 1.0:
            u = u * (b - a) + a
        return float(u[0]) if n is None else u

    def normal(self, n=None, mean=0.0, std=1.0):
        """``n`` values of ``torch.normal(mean, std)``, Box-Muller with Torch7's cache."""
        count = 1 if n is None else int(n)
        out = np.empty(count, dtype=np.float64)
        start = 0
        if count > 0 and self._normal_cache is not None:
            x, rho = self._normal_cache
            out[0] = rho * np.sin(_TWO_PI * x) * std + mean
            self._normal_cache = None
            start = 1
        remaining = count - start
        if remaining > 0:
            pairs = (remaining + 1) // 2
            u = self._bits.random_raw(2 * pairs) * _INV_2_32
            x, y = u[0::2], u[1::2]
            rho = np.sqrt(-2.0 * np.log(1.0 - y))
            angle = _TWO_PI * x
            both = np.empty(2 * pairs, dtype=np.float64)
            both[0::2] = rho * np.cos(angle) * std + mean
            both[1::2] = rho * np.sin(angle) * std + mean
            out[start:] = both[:remaining]
            if remaining % 2:
                self._normal_cache = (float(x[-1]), float(rho[-1]))
        return float(out[0]) if n is None else out

    def bernoulli(self, n, p):
        """``n`` draws of ``torch.bernoulli(p)`` as a bool array (``uniform() <= p``)."""
        return self._bits.random_raw(n) * _INV_2_32 <= p

    def multinomial(self, probs, validate=True):
        """One 0-based index per row of ``probs`` (1-D or 2-D), as ``torch.multinomial(p, 1)``.

        Rows are visited in order, one uniform each. Returns an int or an int64 array.
        ``validate=False`` skips the check that every row sums to a finite positive number
        (for callers that know it, on a hot path).
        """
        if np.ndim(probs) == 1:      # one row (one stream's step): fewer, smaller operations
            cum = np.cumsum(probs, dtype=np.float64)
            if validate and not 0 < cum[-1] < np.inf:
                raise ValueError("invalid multinomial distribution (sum of probabilities <= 0 "
                                 "or not finite)")
            cum /= cum[-1]
            cum[-1] = 1.0
            return int(np.searchsorted(cum, self._bits.random_raw() * _INV_2_32))  # cum >= u
        p = probs if isinstance(probs, np.ndarray) and probs.dtype == np.float64 \
            else np.asarray(probs, dtype=np.float64)
        rows = p.reshape(1, -1) if p.ndim == 1 else p
        cum = np.cumsum(rows, axis=1)
        total = cum[:, -1:]
        if validate and not (total.min() > 0 and np.isfinite(total).min()):
            raise ValueError("invalid multinomial distribution (sum of probabilities <= 0 "
                             "or not finite)")
        cum /= total
        cum[:, -1] = 1.0
        u = self._bits.random_raw(rows.shape[0]) * _INV_2_32
        # The first index j with cum[j] >= u is the number of entries below u.
        idx = (cum < u[:, None]).sum(axis=1)
        return int(idx[0]) if p.ndim == 1 else idx
