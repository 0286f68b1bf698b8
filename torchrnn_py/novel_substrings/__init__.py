"""How novel is sampled text: the share of its substrings that never occur in the training text.

Same question, same numbers and same printed lines as torch-rnn's
``scripts/novel_substrings.py``: for each length L = 1, 2, ..., 49, of all the sampled text's
length-L substrings (one per start position, overlapping, repeats counted every time), the
fraction that occur nowhere in the training text, printed as ``print(L, fraction)``. A model
that only copies its training data scores 0 at every length; real novelty shows as fractions
climbing towards 1 as L grows.

The original asks ``substring in training_text`` for every position and every length, about
49 x len(sampled) scans of the whole training text: hours on real files. Here every length is
one vectorised pass, and each pass only looks at what can still match:

* L-grams are identified by a polynomial rolling hash, extended one character per length
  (``h_L = h_{L-1} * B + c``, numpy uint64 arithmetic wrapping mod 2**64).
* A sampled position can only have a match at length L if it had one at L - 1, and a training
  position can only be a match at length L if its (L-1)-gram equals a found sampled one; both
  sets shrink quickly as L grows, so the later lengths cost almost nothing.
* A sampled position whose match at L - 1 (its "partner" in the training text) is followed by
  the same character is found at L by one character comparison, without trusting any hash.
  The others look their hash up among the training hashes (each training hash is matched
  against the candidates' sorted distinct hashes through a direct-address table, with
  ``np.searchsorted`` for hashes sharing a slot), and the hit is verified character by
  character against one training position holding that hash. Only if
  that verification fails (a hash collision: astronomically rare with real text) is the
  substring searched for directly, exactly as the original does (``str.find``). So the result
  is always exact, whatever the hash does; the hash only decides how fast it is.

Differences from the original, all deliberate:

* Files are read as UTF-8 (the original used the locale's encoding under Python 3, bytes under
  Python 2) with Python 3's universal newlines (``\\r\\n`` and ``\\r`` read as ``\\n``), as
  ``open(path)`` does; substrings are made of code points. An undecodable file is a one-line
  error naming the byte offset.
* The original divides by zero, and dies with a traceback, at the first length longer than the
  sampled text (no substring of that length exists). We stop there instead: lengths up to
  len(sampled) are reported and the command adds a one-line note on stderr. An empty sampled
  file (nothing to measure) and an empty training file (everything trivially novel: surely the
  wrong file) are one-line errors; the library function accepts both.
* ``--max_length`` (default 49, the original's fixed range) sets the largest L.
* Fractions print as Python 3 prints floats (shortest repr); under Python 2 the original's
  ``print`` showed 12 significant digits.
"""

import numpy as np

from ..errors import TorchRNNError
from ..fileio import read_input_bytes, utf8_error

PROG = "torchrnn-novel-substrings"
DEFAULT_MAX_LENGTH = 49  # the original's range(1, 50)
# Any odd 64-bit multiplier spreads L-grams well; results are exact for every value (hash hits
# are verified), so the tests swap in degenerate ones (0, 1) to force collisions.
HASH_BASE = 0x9E3779B97F4A7C15
_VERIFY_ELEMENTS = 1 << 22  # characters compared per vectorised verification chunk
_MIX = np.uint64(0xD6E8FEB86659FD93)  # odd multiplier spreading hashes over table slots
_TABLE_MAX_BITS = 22  # lookup table of at most 4M slots (32 MiB)


def novel_fractions(sampled, training, max_length=DEFAULT_MAX_LENGTH, *, hash_base=HASH_BASE):
    """``[(L, fraction), ...]`` for L = 1 .. min(max_length, len(sampled)).

    ``fraction`` is the share of the sampled text's length-L substrings (every start
    position, overlapping) that occur nowhere in ``training``, computed exactly as the
    original does: ``(searched - found) / float(searched)``. ``sampled`` and ``training`` are
    str (compared code point by code point) or 1-D arrays of integers (compared value by
    value; e.g. token ids). Lengths above len(sampled) have no substrings and are left out
    (the original divides by zero there). ``hash_base`` only affects speed, never the result.
    """
    return list(iter_novel_fractions(sampled, training, max_length, hash_base=hash_base))


def iter_novel_fractions(sampled, training, max_length=DEFAULT_MAX_LENGTH, *,
                         hash_base=HASH_BASE):
    """Like :func:`novel_fractions`, yielding each ``(L, fraction)`` as soon as it is known."""
    check_max_length(max_length)
    s1, s2 = _common_codes(_as_codes(sampled, "sampled"), _as_codes(training, "training"))
    search = _ExactSearch(sampled, training, s1, s2)
    return _scan(s1, s2, int(max_length), np.uint64(int(hash_base) % 2 ** 64), search)


def check_max_length(max_length):
    """Refuse a ``--max_length`` that is not a whole number of at least 1."""
    if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)):
        raise TorchRNNError(f"--max_length must be a whole number, got {max_length!r}")
    if max_length < 1:
        raise TorchRNNError(f"--max_length must be at least 1, got {max_length}")


def _as_codes(text, name):
    """A 1-D integer array for ``text``: code points of a str, or the integers given."""
    if isinstance(text, str):
        if text.isascii():
            return np.frombuffer(text.encode("ascii"), dtype=np.uint8)
        try:
            return np.frombuffer(text.encode("latin-1"), dtype=np.uint8)
        except UnicodeEncodeError:
            return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    if isinstance(text, (bytes, bytearray, memoryview)):
        raise TypeError(f"{name} text must be str or an array of integers, not bytes "
                        f"(decode it first, or pass np.frombuffer(data, np.uint8))")
    codes = np.asarray(text)
    if codes.ndim != 1 or (codes.dtype.kind not in "biu" and codes.size):
        raise TypeError(f"{name} text must be str or a 1-D array of integers, got "
                        f"{codes.ndim}-D {codes.dtype}")
    if codes.dtype.kind == "b" or not codes.size:
        codes = codes.astype(np.uint8)
    return codes


def _common_codes(a, b):
    """Both arrays in one integer dtype, so that comparisons are exact."""
    dtype = np.promote_types(a.dtype, b.dtype)
    if dtype.kind not in "iu":  # uint64 with a signed type promotes to float64
        raise TypeError(f"cannot compare {a.dtype} with {b.dtype} values exactly; give both "
                        f"texts the same integer dtype")
    return a.astype(dtype, copy=False), b.astype(dtype, copy=False)


def _hash_values(codes):
    """Each character as a uint64 for the rolling hash (integers wrap mod 2**64)."""
    return codes.astype(np.uint64)


class _ExactSearch:
    """The original's test, for the rare hash collision: where does this substring occur?"""

    def __init__(self, sampled, training, s1, s2):
        self.texts = (sampled, training) if isinstance(sampled, str) and isinstance(
            training, str) else None
        self.s1, self.s2 = s1, s2
        self._haystack = None

    def find(self, start, length):
        """First position of ``sampled[start:start+length]`` in the training text, or -1."""
        if self.texts is not None:
            sampled, training = self.texts
            return training.find(sampled[start:start + length])
        if self._haystack is None:
            self._haystack = self.s2.tobytes()
        needle = self.s1[start:start + length].tobytes()
        width = self.s2.itemsize
        at = self._haystack.find(needle)
        while at >= 0 and at % width:  # a match straddling two values does not count
            at = self._haystack.find(needle, at + 1)
        return at // width if at >= 0 else -1


def _scan(s1, s2, max_length, base, search):
    """The per-length passes (see the module docstring); yields ``(L, fraction)``."""
    m, n = len(s1), len(s2)
    # int32 positions where they fit, and character hash values gathered as needed rather
    # than stored: memory stays near 16 bytes per training character.
    pos_type = np.int32 if max(m, n) < 2 ** 31 - 1 else np.intp
    # Sampled positions still found (with their L-1 hash and a training position matching
    # their L-1 substring), and training positions that may still match some of them.
    q_pos = np.arange(m, dtype=pos_type)
    q_hash = np.zeros(m, dtype=np.uint64)
    q_partner = np.full(m, -1, dtype=pos_type)
    t_pos = np.arange(n, dtype=pos_type)
    t_hash = np.zeros(n, dtype=np.uint64)
    for length in range(1, min(max_length, m) + 1):
        searched = m - length + 1
        found = 0
        # Positions are kept in ascending order, so those too close to the end are a tail.
        q_pos, q_hash, q_partner = _drop_tail(m - length, q_pos, q_hash, q_partner)
        if q_pos.size:  # else nothing more can be found: every longer substring is novel
            q_hash = q_hash * base + _hash_values(s1[q_pos + (length - 1)])
            t_pos, t_hash = _drop_tail(n - length, t_pos, t_hash)
            t_hash *= base
            t_hash += _hash_values(s2[t_pos + (length - 1)])
            is_found, q_partner, t_keep = _match_length(
                s1, s2, length, q_pos, q_hash, q_partner, t_pos, t_hash, search)
            q_pos, q_hash, q_partner = q_pos[is_found], q_hash[is_found], q_partner[is_found]
            t_pos, t_hash = t_pos[t_keep], t_hash[t_keep]
            found = int(q_pos.size)
        yield length, (searched - found) / float(searched)


def _match_length(s1, s2, length, q_pos, q_hash, q_partner, t_pos, t_hash, search):
    """Which candidate sampled positions have their length-``length`` substring in s2.

    Returns (found mask, new partners, mask of training positions to keep).
    """
    n = len(s2)
    # 1. The partner's next character agrees: found, exactly, no hash involved.
    has_partner = (q_partner >= 0) & (q_partner <= n - length)
    next_at = np.where(has_partner, q_partner + (length - 1), 0)
    extended = has_partner & (s2[next_at] == s1[q_pos + (length - 1)]) if n else has_partner
    partner = np.where(extended, q_partner, -1)

    # 2. Training positions holding one of the candidates' hashes, one representative each.
    hashes, which = np.unique(q_hash, return_inverse=True)
    which = which.reshape(-1)
    slot, hit = _lookup(hashes, t_hash)
    representative = np.full(len(hashes), -1, dtype=np.intp)
    representative[slot[hit]] = t_pos[hit]

    # 3. The other candidates: verify the hash hit character by character.
    others = np.flatnonzero(~extended)
    rep = representative[which[others]]
    others, rep = others[rep >= 0], rep[rep >= 0]
    same = _same_substrings(s1, q_pos[others], s2, rep, length)
    partner[others[same]] = rep[same]

    # 4. Hash collisions: ask the original's question directly (exact, slow, rare).
    for i in others[~same].tolist():
        partner[i] = search.find(int(q_pos[i]), length)

    is_found = partner >= 0
    # Training positions whose substring equals a found one are the only ones that can
    # still match at the next length.
    found_hash = np.zeros(len(hashes), dtype=bool)
    found_hash[which[is_found]] = True
    t_keep = hit & found_hash[slot]
    return is_found, partner, t_keep


def _drop_tail(limit, positions, *others):
    """Keep the entries whose (ascending) position is at most ``limit``."""
    end = int(np.searchsorted(positions, limit, side="right"))
    return (positions[:end],) + tuple(x[:end] for x in others)


def _lookup(hashes, wanted):
    """For each of ``wanted``: its index in the sorted unique array ``hashes`` and whether
    it is there at all (index 0 where not).

    A direct-address table keyed by the top bits of a multiplicative mix of the hash does
    most of the work in one gather (much faster than a binary search per training position);
    the hashes that lost their table slot to another are looked up by binary search.
    """
    count = len(hashes)
    bits = min(_TABLE_MAX_BITS, max(8, count.bit_length() + 3))
    shift = np.uint64(64 - bits)
    own_key = ((hashes * _MIX) >> shift).astype(np.intp)
    table = np.full(1 << bits, -1, dtype=np.intp)
    table[own_key] = np.arange(count, dtype=np.intp)
    key = ((wanted * _MIX) >> shift).astype(np.intp)
    slot = table[key]
    hit = slot >= 0
    np.maximum(slot, 0, out=slot)
    hit &= hashes[slot] == wanted
    lost = np.flatnonzero(table[own_key] != np.arange(count))
    if lost.size:  # several hashes share a slot: binary search among the displaced ones
        contested = np.zeros(1 << bits, dtype=bool)
        contested[own_key[lost]] = True
        check = np.flatnonzero(~hit & contested[key])
        lost_hashes = hashes[lost]  # still sorted
        at = np.minimum(np.searchsorted(lost_hashes, wanted[check]), lost.size - 1)
        ok = lost_hashes[at] == wanted[check]
        slot[check[ok]] = lost[at[ok]]
        hit[check[ok]] = True
    return slot, hit


def _same_substrings(s1, starts1, s2, starts2, length):
    """Mask: ``s1[a:a+length] == s2[b:b+length]`` for each pair (a, b), vectorised."""
    same = np.empty(len(starts1), dtype=bool)
    offsets = np.arange(length, dtype=np.intp)
    step = max(1, _VERIFY_ELEMENTS // length)
    for lo in range(0, len(starts1), step):
        a = starts1[lo:lo + step, None] + offsets
        b = starts2[lo:lo + step, None] + offsets
        same[lo:lo + step] = (s1[a] == s2[b]).all(axis=1)
    return same


def read_text(path, what):
    """The file as Python 3's ``open(path, encoding='utf-8').read()`` gives it, or a clear error.

    Universal newlines, as the original's ``open(path, 'r')`` under Python 3; a byte sequence
    that is not UTF-8 is reported with its offset; an empty file is an error.
    """
    raw = read_input_bytes(path, what)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise utf8_error(err, f"{path}: {what}") from None
    if not text:
        raise TorchRNNError(f"{path}: {what} is empty")
    return text.replace("\r\n", "\n").replace("\r", "\n")
