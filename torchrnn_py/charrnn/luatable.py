"""The order in which Torch7's LuaJIT visits a table's keys, so files list them as Torch7 does.

``torch.save`` writes a table's entries in ``pairs`` order, which for string and number keys
is a pure function of the keys and the order they were inserted: LuaJIT (2.1.0-beta1 as
torch/luajit-rocks builds it) keeps integer keys 0..n in an array part and the others in a
hash part of 2^k nodes, each key at ``hash & (size - 1)`` or, on a collision, in the highest
free node, and grows the table by rehashing every key into a fresh part. Strings are hashed
with Bob Jenkins' lookup3 (torch's build uses it instead of LuaJIT's sparse hash), numbers
with LuaJIT's ``hashrot`` of the double's two words. :func:`pairs_order` replays those rules;
tests/test_charrnn_write.py checks it against the fixtures' tables (every module's fields,
the checkpoint and its vocabulary).
"""
import struct

_MASK = 0xffffffff
_MAX_ASIZE = (1 << 27) + 1              # LuaJIT's LJ_MAX_ASIZE (LJ_MAX_ABITS = 28)


def pairs_order(keys):
    """``keys`` (str, bytes or numbers) in the order ``pairs`` visits them after they were
    inserted in this order into a new table ``{}`` (with non-nil values)."""
    table = _Table()
    for key in keys:
        table.set(_lua_key(key), key)
    return table.order()


def _lua_key(key):
    if isinstance(key, str):
        return key.encode("utf-8", "surrogateescape")
    if isinstance(key, (bytes, bytearray)):
        return bytes(key)
    if isinstance(key, bool) or not isinstance(key, (int, float)):
        raise TypeError(f"pairs_order takes string and number keys, not {key!r}")
    return float(key)


def _rol(x, k):
    return ((x << k) | (x >> (32 - k))) & _MASK


def string_hash(raw):
    """lookup3's hashlittle with seed 0, as torch's LuaJIT hashes interned strings."""
    a = b = c = (0xdeadbeef + len(raw)) & _MASK
    while len(raw) > 12:
        a, b, c = ((v + int.from_bytes(raw[4 * i:4 * i + 4], "little")) & _MASK
                   for i, v in enumerate((a, b, c)))
        for x, y, z, k in ((0, 2, 1, 4), (1, 0, 2, 6), (2, 1, 0, 8), (0, 2, 1, 16),
                           (1, 0, 2, 19), (2, 1, 0, 4)):
            v = [a, b, c]
            v[x] = ((v[x] - v[y]) & _MASK) ^ _rol(v[y], k)      # x -= y; x ^= rol(y, k)
            v[y] = (v[y] + v[z]) & _MASK                          # y += z
            a, b, c = v
        raw = raw[12:]
    if not raw:
        return c
    tail = raw + bytes(12 - len(raw))
    a = (a + int.from_bytes(tail[0:4], "little")) & _MASK
    b = (b + int.from_bytes(tail[4:8], "little")) & _MASK if len(raw) > 4 else b
    c = (c + int.from_bytes(tail[8:12], "little")) & _MASK if len(raw) > 8 else c
    v = [a, b, c]
    for x, y, k in ((2, 1, 14), (0, 2, 11), (1, 0, 25), (2, 1, 16), (0, 2, 4), (1, 0, 14),
                    (2, 1, 24)):
        v[x] = ((v[x] ^ v[y]) - _rol(v[y], k)) & _MASK            # x ^= y; x -= rol(y, k)
    return v[2]


def number_hash(value):
    """LuaJIT's hashnum on x86-64: hashrot(lo, hi << 1) of the double's words."""
    bits = struct.unpack("<Q", struct.pack("<d", value))[0]
    lo, hi = bits & _MASK, ((bits >> 32) << 1) & _MASK
    lo ^= hi
    hi = _rol(hi, 14)
    lo = (lo - hi) & _MASK
    hi = _rol(hi, 5)
    hi ^= lo
    return (hi - _rol(lo, 13)) & _MASK


def _array_index(key):
    """The integer a number key would take in the array part, else None."""
    if isinstance(key, float) and key.is_integer() and 0 <= key < _MAX_ASIZE:
        return int(key)
    return None


def _hash_bits(count):
    return 0 if count == 0 else 1 if count == 1 else (count - 1).bit_length()


class _Table:
    """A LuaJIT table of non-nil entries: ``array`` (slots 0..asize-1) and hash ``nodes``
    of [key, value, next] (lj_tab.c's lj_tab_newkey, rehashtab and lj_tab_resize)."""

    def __init__(self):
        self.array, self.nodes, self.free = [], [], 0      # no hash part: LuaJIT's nilnode

    def main(self, key):
        h = string_hash(key) if isinstance(key, bytes) else number_hash(key)
        return h & (len(self.nodes) - 1)

    def find(self, key):
        n = self.main(key) if self.nodes else None
        while n is not None and self.nodes[n][0] != key:
            n = self.nodes[n][2]
        return n

    def set(self, key, value):
        index = _array_index(key) if not isinstance(key, bytes) else None
        if index is not None and index < len(self.array):
            self.array[index] = value
            return
        n = self.find(key)
        if n is None:
            n = self.new_key(key)
        if n is not None:
            self.nodes[n][1] = value
        else:
            self.set(key, value)                  # the table was rehashed: insert again

    def new_key(self, key):
        """The node for a new key, or None when the table had to be rehashed first."""
        if not self.nodes:
            self.rehash(key)
            return None
        n = self.main(key)
        if self.nodes[n][1] is not None:          # the main position is taken
            free = self.free
            while True:
                if free == 0:
                    self.rehash(key)
                    return None
                free -= 1
                if self.nodes[free][0] is None:
                    break
            self.free = free
            n = self._collide(n, free)
        self.nodes[n][0] = key
        return n

    def _collide(self, n, free):
        """Make room at main position ``n`` using the free node; the node to fill."""
        nodes = self.nodes
        other = self.main(nodes[n][0])
        if other == n:                            # same main position: chain the free node
            nodes[free][2], nodes[n][2] = nodes[n][2], free
            return free
        while nodes[other][2] != n:               # move the intruder out to the free node
            other = nodes[other][2]
        nodes[other][2] = free
        nodes[free][:] = nodes[n]
        nodes[n][1:] = [None, None]
        walk = free
        while nodes[walk][2] is not None:         # rechain strings whose main node is n
            nxt = nodes[walk][2]
            if isinstance(nodes[nxt][0], bytes) and nodes[nxt][1] is not None \
                    and self.main(nodes[nxt][0]) == n:
                nodes[walk][2], nodes[nxt][2], nodes[n][2] = nodes[nxt][2], nodes[n][2], nxt
            else:
                walk = nxt
        return n

    def rehash(self, extra):
        """rehashtab: size the array part for the integer keys, the hash for the rest."""
        bins = [0] * 28
        counted = 0
        for index, value in enumerate(self.array):
            if value is not None:
                bins[(index - 1).bit_length() - 1 if index > 2 else 0] += 1
                counted += 1
        total = 1 + counted
        for key in [node[0] for node in self.nodes if node[1] is not None] + [extra]:
            index = _array_index(key) if not isinstance(key, bytes) else None
            if index is not None:
                bins[(index - 1).bit_length() - 1 if index > 2 else 0] += 1
                counted += 1
        total += sum(1 for node in self.nodes if node[1] is not None)
        asize, in_array = _best_array_size(bins, counted)
        self.resize(asize, _hash_bits(total - in_array))

    def resize(self, asize, hash_bits):
        old_nodes, old_array = self.nodes, self.array
        self.array = old_array + [None] * (asize - len(old_array))
        self.nodes = [[None, None, None] for _ in range(1 << hash_bits)] if hash_bits else []
        self.free = len(self.nodes)
        if asize < len(old_array):
            self.array = old_array[:asize]
            for index in range(asize, len(old_array)):
                if old_array[index] is not None:
                    self.set(float(index), old_array[index])
        for key, value, _ in old_nodes:
            if value is not None:
                self.set(key, value)

    def order(self):
        return [v for v in self.array if v is not None] + \
            [node[1] for node in self.nodes if node[1] is not None]


def _best_array_size(bins, count):
    """bestasize: the largest 2^(b+1)+1 slots more than half used; (size, keys in it)."""
    size = in_array = total = 0
    b = 0
    while 2 * count > (1 << b) and total != count:
        if bins[b] > 0:
            total += bins[b]
            if 2 * total > (1 << b):
                size, in_array = (2 << b) + 1, total
        b += 1
    return size, in_array
