"""Byte-level damage shared by the fuzz scripts (benchmarks/fuzz_t7.py, fuzz_readers.py)."""


def edit_at(data, pos, kind, rng):
    """Apply one structural mutation ``kind`` (truncate, insert, delete, duplicate) at
    ``pos`` of the bytearray ``data``; returns (bytes, description) or None for another
    kind."""
    if kind == "truncate":
        return bytes(data[:pos]), f"truncated to {pos} bytes"
    if kind == "insert":
        n = rng.randint(1, 16)
        data[pos:pos] = bytes(rng.randrange(256) for _ in range(n))
        return bytes(data), f"{n} bytes inserted at {pos}"
    if kind == "delete":
        n = rng.randint(1, 64)
        del data[pos:pos + n]
        return bytes(data), f"{n} bytes deleted at {pos}"
    if kind == "duplicate":
        n = rng.randint(1, 256)
        data[pos:pos] = data[pos:pos + n]
        return bytes(data), f"{n} bytes duplicated at {pos}"
    return None
