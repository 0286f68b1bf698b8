"""BinToUTF8 codec: byte-exact round trips, the BCL alphabet and table rules, unknown
characters, chunk boundaries, and the commands' one-line errors."""
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from torchrnn_py.cli import bintoutf8 as b2u_cli
from torchrnn_py import bintoutf8 as b2u
from torchrnn_py.cli.bintoutf8 import parse_unknown
from torchrnn_py.cmdline import UsageError
from torchrnn_py.errors import TorchRNNError

ASCII_ALPHABET = "".join(chr(c) for c in range(0x23, 0x7F))


def random_bytes(seed, n):
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def naive_table(data):
    """The published pseudocode, a Python loop: slots in order of first appearance."""
    order = []
    for b in data:
        if b not in order:
            order.append(b)
    return bytes(order + [b for b in range(256) if b not in order])


def file_round_trip(tmp_path, data, mode, chunk_size=b2u.CHUNK_SIZE):
    src = tmp_path / "in.raw"
    src.write_bytes(data)
    result = b2u.encode_file(str(src), mode=mode, chunk_size=chunk_size)
    text_path = str(src) + ".txt"
    back = tmp_path / "back.bin"
    unknown = b2u.decode_file(text_path, str(back), mode=mode, chunk_size=chunk_size)
    assert unknown == 0
    return result, text_path, back.read_bytes()


# ----------------------------------------------------------------- round trips

SAMPLES = {
    "empty": b"",
    "one": b"\x00",
    "all256": bytes(range(256)),
    "all256_reversed": bytes(range(255, -1, -1)),
    "random_small": random_bytes(0, 1000),
    "random_two_values": bytes(np.random.default_rng(1).choice([0x80, 0x7F], 5000)),
}


@pytest.mark.parametrize("mode", b2u.MODES)
@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_round_trip_in_memory(name, mode):
    data = SAMPLES[name]
    text, table = b2u.encode_bytes(data, mode=mode)
    assert len(text) == len(data)
    back, unknown = b2u.decode_text(text, mode=mode, table=table)
    assert back == data and unknown == 0
    # and through UTF-8 bytes, as a file holds it
    back, _ = b2u.decode_text(text.encode("utf-8"), mode=mode, table=table)
    assert back == data


@pytest.mark.parametrize("mode", b2u.MODES)
@pytest.mark.parametrize("seed,size,chunk", [(0, 70_000, 4096), (1, 9_999, 7), (2, 3_001, 1),
                                             (3, 300_000, 65_536), (4, 256, 3)])
def test_round_trip_files_across_chunks(tmp_path, mode, seed, size, chunk):
    # tiny and odd chunk sizes split 3-byte characters across reads when decoding
    data = random_bytes(seed, size)
    result, text_path, back = file_round_trip(tmp_path, data, mode, chunk)
    assert back == data
    assert result.bytes_in == result.chars_out == size
    assert result.text_bytes == os.path.getsize(text_path)


@pytest.mark.parametrize("mode", b2u.MODES)
def test_round_trip_empty_file(tmp_path, mode):
    result, text_path, back = file_round_trip(tmp_path, b"", mode)
    assert back == b"" and os.path.getsize(text_path) == 0
    if mode == "bcl":
        assert (tmp_path / "in.raw.bcl").read_bytes() == bytes(range(256))


@pytest.mark.parametrize("mode", b2u.MODES)
def test_round_trip_real_binary(tmp_path, mode):
    with open(sys.executable, "rb") as f:
        data = f.read(1 << 20)
    assert len(data) > 1000
    _, _, back = file_round_trip(tmp_path, data, mode, chunk_size=100_003)
    assert back == data


def test_round_trip_audio_like_sparse_values_across_chunks(tmp_path):
    # a rare value first seen late, in a later chunk, must still get the next slot
    t = np.arange(200_000)
    data = (128 + 20 * np.sin(t / 9)).astype(np.uint8)
    data[150_000] = 0
    data[199_999] = 255
    data = data.tobytes()
    _, _, back = file_round_trip(tmp_path, data, "bcl", chunk_size=30_000)
    assert back == data
    table = (tmp_path / "in.raw.bcl").read_bytes()
    assert table == naive_table(data) == b2u.build_table(data)


# ----------------------------------------------------------------- BCL table and alphabet

def test_bcl_alphabet_rule():
    data = bytes([200, 200, 7]) + bytes(b for b in range(256) if b not in (200, 7))
    text, table = b2u.encode_bytes(data)
    assert text[0] == text[1] == "#"          # first new byte -> '#'
    assert text[2] == "$"                     # second new byte -> '$'
    distinct = text[:1] + text[2:]
    assert distinct[:92] == ASCII_ALPHABET    # '#'..'~' in code-point order
    assert distinct[91] == "~"                # 92nd new byte -> '~'
    assert distinct[92] == "\u3900"           # 93rd -> U+3900
    assert distinct[255] == "\u39a3"          # 256th -> U+39A3
    assert table[:3] == bytes([200, 7, 0])
    assert len(b2u.BCL_ALPHABET) == 256 and b2u.BCL_ALPHABET[0] == ord("#")


def test_bcl_text_has_no_space_newline_quote_or_control():
    text, _ = b2u.encode_bytes(random_bytes(5, 20_000) + bytes(range(256)))
    used = set(text)
    assert len(used) == 256
    assert not used & set(' !"\n\r\t\x00\x7f')
    assert all(0x23 <= ord(c) <= 0x7E or 0x3900 <= ord(c) <= 0x39A3 for c in used)


def test_table_is_permutation_with_ascending_fill(tmp_path):
    data = b"\x05\x03\x05\xff\x03"
    table = b2u.build_table(data)
    expected = bytes([5, 3, 255] + [b for b in range(256) if b not in (5, 3, 255)])
    assert table == expected
    src = tmp_path / "voice.raw"
    src.write_bytes(data)
    b2u.encode_file(str(src))
    assert (tmp_path / "voice.raw.bcl").read_bytes() == expected
    assert sorted((tmp_path / "voice.raw.bcl").read_bytes()) == list(range(256))
    assert (tmp_path / "voice.raw.txt").read_text("utf-8") == "#$#%$"


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=600), st.integers(1, 70))
def test_streamed_table_matches_pseudocode(data, chunk):
    builder = b2u.TableBuilder()
    for start in range(0, len(data), chunk):
        builder.feed(data[start:start + chunk])
    assert builder.table() == naive_table(data) == b2u.build_table(data)


def test_encoding_with_a_given_table_maps_through_it(tmp_path):
    table = b2u.build_table(b"abc")
    text, used = b2u.encode_bytes(b"cab", table=table)
    assert text == "%#$" and used == table
    # files: --use-table re-uses it and writes it beside the output for decoding
    src = tmp_path / "seed.raw"
    src.write_bytes(b"cab")
    (tmp_path / "model.bcl").write_bytes(table)
    assert b2u_cli.main_encode([str(src), "--use-table", str(tmp_path / "model.bcl")]) == 0
    assert (tmp_path / "seed.raw.txt").read_text("utf-8") == "%#$"
    assert (tmp_path / "seed.raw.bcl").read_bytes() == table


def test_table_written_where_asked(tmp_path):
    src = tmp_path / "a.raw"
    src.write_bytes(b"xyz")
    out = tmp_path / "text.txt"
    assert b2u_cli.main_encode([str(src), str(out), "--table", str(tmp_path / "t.bcl")]) == 0
    assert (tmp_path / "t.bcl").exists() and not (tmp_path / "text.bcl").exists()
    assert b2u_cli.main_decode([str(out), str(tmp_path / "b"), "--table",
                            str(tmp_path / "t.bcl")]) == 0
    assert (tmp_path / "b").read_bytes() == b"xyz"


def test_use_table_reads_the_table_file_in_the_library(tmp_path):
    table = b2u.build_table(b"abc")
    (tmp_path / "model.bcl").write_bytes(table)
    src = tmp_path / "seed.raw"
    src.write_bytes(b"cab")
    result = b2u.encode_file(str(src), use_table=str(tmp_path / "model.bcl"))
    assert result.table == table and (tmp_path / "seed.raw.txt").read_text("utf-8") == "%#$"
    with pytest.raises(TorchRNNError, match="not both"):
        b2u.encode_file(str(src), table=table, use_table=str(tmp_path / "model.bcl"))


def test_offset_mode_table_is_refused_once_by_the_codec(tmp_path, capsys):
    """The codec checks the options (a usage error) before it reads a table or the input."""
    absent = str(tmp_path / "absent.raw")
    with pytest.raises(UsageError, match="^--table and --use-table are for bcl mode; offset "
                                         "mode has no table$"):
        b2u.encode_file(absent, mode="offset", use_table=str(tmp_path / "absent.bcl"))
    with pytest.raises(UsageError, match="^--table is for bcl mode; offset mode has no table$"):
        b2u.decode_file(absent, mode="offset", table_path=str(tmp_path / "t.bcl"))
    assert b2u_cli.main_encode([absent, "--mode", "offset", "--use-table", "absent.bcl"]) == 2
    assert capsys.readouterr().err == ("bintoutf8: error: --table and --use-table are for bcl "
                                       "mode; offset mode has no table\n")
    assert b2u_cli.main_decode([absent, "--mode", "offset", "--table", "t.bcl"]) == 2
    assert capsys.readouterr().err == ("utf8tobin: error: --table is for bcl mode; offset mode "
                                       "has no table\n")
    assert os.listdir(tmp_path) == []


def test_the_codecs_do_not_import_the_command_layer():
    code = ("import sys, torchrnn_py.bintoutf8, torchrnn_py.audio; "
            "print(sorted(m for m in sys.modules if m.startswith('torchrnn_py.cli')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr


# ----------------------------------------------------------------- offset mode

def test_offset_mode_is_u3900_plus_byte(tmp_path):
    data = bytes(range(256))
    text, table = b2u.encode_bytes(data, mode="offset")
    assert table is None
    assert text == "".join(chr(0x3900 + b) for b in data)
    src = tmp_path / "x.raw"
    src.write_bytes(data)
    result = b2u.encode_file(str(src), mode="offset")
    assert result.table_path is None and not (tmp_path / "x.raw.bcl").exists()
    raw = (tmp_path / "x.raw.txt").read_bytes()
    assert len(raw) == 3 * 256 and raw.decode("utf-8") == text


# ----------------------------------------------------------------- unknown characters

@pytest.fixture
def encoded():
    data = bytes([0x80, 0x81, 0x7F, 0x80]) + bytes(range(200, 256))
    text, table = b2u.encode_bytes(data)
    return data, text, table


def test_unknown_skip_counts_trailing_newline_and_bom(encoded):
    data, text, table = encoded
    for noisy, count in [(text + "\n", 1), (text + "\r\n", 2), ("\ufeff" + text + "\n", 2),
                         (text[:2] + "\U0001F600" + text[2:], 1)]:
        back, unknown = b2u.decode_text(noisy, table=table)
        assert back == data and unknown == count


def test_unknown_replaced_by_byte(encoded):
    data, text, table = encoded
    back, unknown = b2u.decode_text("\ufeff" + text + "\r\n", table=table, unknown=0x80)
    assert back == b"\x80" + data + b"\x80\x80" and unknown == 3
    back, unknown = b2u.decode_text("㤀 " + "\n", mode="offset", unknown=0)
    assert back == b"\x00\x00\x00" and unknown == 2


def test_unknown_error_names_character_and_position(encoded):
    _, text, table = encoded
    with pytest.raises(TorchRNNError, match=r"'\\n' \(U\+000A\) at character offset 60"):
        b2u.decode_text(text + "\n", table=table, unknown="error")
    with pytest.raises(TorchRNNError, match=r"U\+FEFF.* offset 0"):
        b2u.decode_text("\ufeff" + text, table=table, unknown="error")
    assert b2u.decode_text(text, table=table, unknown="error")[1] == 0


def test_unknown_error_position_is_absolute_across_chunks(tmp_path):
    text_path = tmp_path / "s.txt"
    text_path.write_text("㤀" * 1000 + "x" + "㤁", encoding="utf-8")
    out = tmp_path / "s.bin"
    with pytest.raises(TorchRNNError, match=r"'x' \(U\+0078\) at character offset 1000"):
        b2u.decode_file(str(text_path), str(out), mode="offset", unknown="error", chunk_size=64)
    assert not out.exists()
    assert b2u.decode_file(str(text_path), str(out), mode="offset", chunk_size=64) == 1
    assert out.read_bytes() == b"\x00" * 1000 + b"\x01"


def test_invalid_utf8_offset_is_absolute_across_chunks(tmp_path):
    text_path = tmp_path / "s.txt"
    text_path.write_bytes("㤀".encode() * 100 + b"\xff" + "㤀".encode())
    with pytest.raises(TorchRNNError, match=r"not valid UTF-8 at byte offset 300 \(bytes ff"):
        b2u.decode_file(str(text_path), str(tmp_path / "o"), mode="offset", chunk_size=7)
    text_path.write_bytes("㤀".encode() * 10 + "㤀".encode()[:2])  # truncated at the end
    with pytest.raises(TorchRNNError, match=r"byte offset 30 .*unexpected end of data"):
        b2u.decode_file(str(text_path), str(tmp_path / "o"), mode="offset", chunk_size=4)
    assert not (tmp_path / "o").exists()


def test_library_functions_do_not_print(tmp_path, capsys):
    src = tmp_path / "q.raw"
    src.write_bytes(b"hello")
    b2u.encode_file(str(src))
    b2u.decode_file(str(src) + ".txt")
    assert (tmp_path / "q.raw.bin").read_bytes() == b"hello"
    assert capsys.readouterr() == ("", "")


# ----------------------------------------------------------------- commands

def test_commands_default_names_and_summary(tmp_path, capsys):
    src = tmp_path / "voice.raw"
    data = random_bytes(9, 5000)
    src.write_bytes(data)
    assert b2u_cli.main_encode([str(src)]) == 0
    out = capsys.readouterr().out
    assert "5000 bytes" in out and "5000 characters" in out and "voice.raw.bcl" in out
    assert (tmp_path / "voice.raw.txt").exists() and (tmp_path / "voice.raw.bcl").exists()
    # sampled text ends with a newline: skipped by default, and reported
    with open(tmp_path / "voice.raw.txt", "a", encoding="utf-8") as f:
        f.write("\n")
    assert b2u_cli.main_decode([str(tmp_path / "voice.raw.txt")]) == 0
    out = capsys.readouterr().out
    assert "1 character not in the table" in out
    assert (tmp_path / "voice.raw.bin").read_bytes() == data
    assert b2u_cli.main_decode([str(tmp_path / "voice.raw.txt"), str(tmp_path / "r.bin"),
                            "--unknown", "0x80"]) == 0
    assert (tmp_path / "r.bin").read_bytes() == data + b"\x80"
    assert "0x80" in capsys.readouterr().out


def test_module_dispatcher(tmp_path):
    src = tmp_path / "m.raw"
    src.write_bytes(b"\x01\x02")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    for args in (["encode", str(src), "--mode", "offset"],
                 ["decode", str(src) + ".txt", "--mode", "offset"]):
        proc = subprocess.run([sys.executable, "-m", "torchrnn_py.bintoutf8"] + args,
                              capture_output=True, text=True, env=env, timeout=60)
        assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "m.raw.bin").read_bytes() == b"\x01\x02"


def run_failing(main, argv, capsys, status=None):
    """Run a command that must fail: one line on stderr, no traceback, non-zero exit."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0 and (status is None or code == status)
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    return err


@pytest.fixture
def project(tmp_path):
    """An encoded file with its table, and an output that already holds something."""
    src = tmp_path / "voice.raw"
    src.write_bytes(random_bytes(3, 3000))
    b2u.encode_file(str(src))
    existing = tmp_path / "existing.bin"
    existing.write_bytes(b"keep me")
    return tmp_path, existing


def test_bad_inputs_one_line_and_outputs_intact(project, capsys):
    d, existing = project
    text, table = str(d / "voice.raw.txt"), str(d / "voice.raw.bcl")
    enc, dec = b2u_cli.main_encode, b2u_cli.main_decode
    cases = [
        (enc, [str(d / "nope.raw"), str(existing)], "not found"),
        (dec, [str(d / "nope.txt"), str(existing)], "not found"),
        (enc, [str(d / "voice.raw"), str(d / "missing" / "out.txt")], "does not exist"),
        (dec, [text, str(d / "missing" / "out.bin")], "does not exist"),
    ]
    (d / "short.bcl").write_bytes(bytes(range(100)))
    cases.append((dec, [text, str(existing), "--table", str(d / "short.bcl")],
                  "256 bytes, found 100"))
    (d / "dup.bcl").write_bytes(bytes([7]) + bytes(range(1, 256)))
    cases.append((dec, [text, str(existing), "--table", str(d / "dup.bcl")],
                  "byte value 7 (0x07) appears 2 times"))
    cases.append((enc, [str(d / "voice.raw"), str(existing), "--use-table", str(d / "dup.bcl")],
                  "appears 2 times"))
    with open(text, "a", encoding="utf-8") as f:
        f.write("\n")
    cases.append((dec, [text, str(existing), "--unknown", "error"], "U+000A"))
    (d / "bad.txt").write_bytes(b"#$\xc3(")
    cases.append((dec, [str(d / "bad.txt"), str(existing), "--table", table],
                  "not valid UTF-8 at byte offset 2"))
    (d / "sample.txt").write_text("#$%", encoding="utf-8")
    cases.append((dec, [str(d / "sample.txt"), str(existing)],
                  str(d / "sample.bcl") + ": .bcl table not found"))
    for main, argv, expected in cases:
        err = run_failing(main, argv, capsys)
        assert expected in err, (argv, err)
        assert existing.read_bytes() == b"keep me"
    assert not (d / "missing").exists()
    assert [p.name for p in d.iterdir() if p.name.endswith(".tmp")] == []


def test_usage_errors(project, capsys):
    d, existing = project
    text = str(d / "voice.raw.txt")
    err = run_failing(b2u_cli.main_decode, [text, str(existing), "--unknown", "300"], capsys, 2)
    assert "--unknown" in err
    run_failing(b2u_cli.main_decode, [text, "--mode", "rot13"], capsys, 2)
    run_failing(b2u_cli.main_encode, [str(d / "voice.raw"), "--mode", "offset", "--table", "t.bcl"],
                capsys, 2)
    err = run_failing(b2u_cli.main_encode, [str(d / "voice.raw"), str(d / "voice.raw")], capsys)
    assert "overwrite" in err
    assert existing.read_bytes() == b"keep me"


def test_parse_unknown():
    assert parse_unknown("skip") == "skip"
    assert parse_unknown("ERROR") == "error"
    assert parse_unknown("128") == parse_unknown("0x80") == 128
    for bad in ("256", "-1", "0x", "0x100", "abc"):
        with pytest.raises(TorchRNNError):
            parse_unknown(bad)


# -- inputs that are not regular files (issue 9) --------------------------------------------

def test_decode_streams_from_a_pipe_but_refuses_a_device(tmp_path):
    import threading
    data = bytes(range(256)) * 3
    src = tmp_path / "data.bin"
    src.write_bytes(data)
    b2u.encode_file(str(src), str(tmp_path / "t.txt"), mode="bcl")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    text = (tmp_path / "t.txt").read_bytes()

    def writer():
        with open(fifo, "wb") as f:
            f.write(text)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    b2u.decode_file(str(fifo), str(tmp_path / "back.bin"), table_path=str(tmp_path / "t.bcl"))
    thread.join(5)
    assert (tmp_path / "back.bin").read_bytes() == data
    with pytest.raises(TorchRNNError, match="^/dev/zero: expected a regular file or a pipe "
                                            r"\(an input file\), found a character device$"):
        b2u.decode_file("/dev/zero", str(tmp_path / "z.bin"), mode="offset")
    with pytest.raises(TorchRNNError, match="found a FIFO"):      # encoding reads it twice
        b2u.encode_file(str(fifo), str(tmp_path / "again.txt"))


# Linux's /proc/self/mem is a regular file whose first read fails (EIO: address 0 is not
# mapped): a real input that cannot be read
UNREADABLE = "/proc/self/mem"


@pytest.mark.parametrize("command, flags", [(b2u_cli.main_encode, []),
                                            (b2u_cli.main_encode, ["--mode", "offset"]),
                                            (b2u_cli.main_decode, ["--mode", "offset"])])
def test_a_read_error_names_the_input_and_keeps_the_output(command, flags, tmp_path, capsys):
    out = tmp_path / "out"
    out.write_bytes(b"kept")
    assert command([UNREADABLE, str(out)] + flags) == 1
    err = capsys.readouterr().err
    assert err.endswith(f"error: {UNREADABLE}: cannot read input file: Input/output error\n")
    assert err.count("\n") == 1 and out.read_bytes() == b"kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]      # no temp file left


@pytest.mark.parametrize("command", ["encode", "decode"])
def test_sigterm_mid_run_removes_the_temporary_file_and_keeps_the_output(command, tmp_path,
                                                                          monkeypatch, capsys):
    """SIGTERM while the input is being read (sent by the reader itself, after its first
    chunk): "terminated", exit 143, the temporary file gone and the old output kept (the
    commands used to die leaving both)."""
    import signal
    real = b2u.read_input_chunks

    def killed_after_the_first_chunk(path, chunk_size):
        for n, chunk in enumerate(real(path, chunk_size)):
            yield chunk
            if n == 0:
                os.kill(os.getpid(), signal.SIGTERM)
    monkeypatch.setattr(b2u, "read_input_chunks", killed_after_the_first_chunk)
    source, out = tmp_path / "in", tmp_path / "out"
    source.write_bytes(bytes(range(256)) * 64 if command == "encode" else
                       "\u3901".encode() * 4096)
    out.write_bytes(b"old")
    main = b2u_cli.main_encode if command == "encode" else b2u_cli.main_decode

    def unhandled(signum, frame):                  # what the test sees if the command does not
        raise AssertionError("SIGTERM was not handled by the command")
    previous = signal.signal(signal.SIGTERM, unhandled)
    try:
        assert main([str(source), str(out), "--mode", "offset"]) == 143
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert capsys.readouterr().err == f"{'bintoutf8' if command == 'encode' else 'utf8tobin'}" \
                                      f": terminated\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]
    assert out.read_bytes() == b"old"


def test_default_table_is_never_made_beside_a_device(tmp_path):
    """bintoutf8 IN /dev/null wrote its table to /dev/null.bcl (a new file in /dev); the
    table beside an output that is not a regular file is refused, --table still works."""
    data = tmp_path / "data.bin"
    data.write_bytes(bytes(range(256)))
    os.symlink("/dev/null", tmp_path / "null.txt")
    for out in ("/dev/null", str(tmp_path / "null.txt")):
        with pytest.raises(TorchRNNError) as caught:
            b2u.encode_file(str(data), out)
        table = os.path.splitext(out)[0] + ".bcl"
        assert str(caught.value) == (f"{out}: the default table {table} would be named after "
                                     f"it, so it must be a regular file or a new file name, "
                                     f"found a character device; give --table")
        assert not os.path.exists(table)
    result = b2u.encode_file(str(data), "/dev/null", table_path=str(tmp_path / "t.bcl"))
    assert result.table_path == str(tmp_path / "t.bcl") and (tmp_path / "t.bcl").is_file()


def test_default_decoded_output_is_never_made_beside_a_pipe(tmp_path):
    """utf8tobin /dev/stdin wrote /dev/stdin.bin (a new file in /dev); a default output
    beside an input that is not a regular file is refused, OUT given still works."""
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    with pytest.raises(TorchRNNError) as caught:
        b2u.decode_file(str(fifo), mode="offset")
    assert str(caught.value) == (f"{fifo}: the default output {tmp_path / 'in.bin'} would be "
                                 f"named after it, so it must be a regular file or a new file "
                                 f"name, found a FIFO (named pipe); give OUT")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.fifo"]
    assert b2u_cli.main_decode([str(fifo), "--mode", "offset"]) == 1     # the command too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.fifo"]
    text = tmp_path / "in.txt"
    text.write_bytes("\u3901\u3902".encode())
    assert b2u.decode_file(str(text), mode="offset") == 0
    assert (tmp_path / "in.bin").read_bytes() == b"\x01\x02"
