"""Audio pipeline: G.711 tables against per-sample transcriptions of the reference code, the
8-bit PCM mapping, WAV reading (every PCM width, float, stereo, extensible, G.711), exact
block-wise resampling, the encode/decode commands end to end, and their one-line errors."""
import os
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
from scipy.io import wavfile
from scipy.signal import resample_poly

from torchrnn_py.cli import audio as audio_cli
from torchrnn_py import audio
from torchrnn_py.bintoutf8 import BCL_ALPHABET, OFFSET_BASE
from torchrnn_py.cmdline import UsageError
from torchrnn_py.errors import TorchRNNError

# --------------------------------------------------------------------------- references
# Straightforward per-sample transcriptions of the classic C code, kept independent of the
# vectorised implementation (different formulations: exponent lookup table, loops).

_EXP_LUT = [0 if i == 0 else i.bit_length() - 1 for i in range(256)]


def ref_linear2ulaw(sample):
    """The classic linear2ulaw (Sun g711.c formulation with BIAS 0x84 and CLIP 32635)."""
    sign = 0x80 if sample < 0 else 0
    if sample < 0:
        sample = -sample
    if sample > 32635:
        sample = 32635
    sample += 0x84
    exponent = _EXP_LUT[(sample >> 7) & 0xFF]
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def ref_ulaw2linear(code):
    """ITU-T G.191 ulaw_expand, one sample (14-bit left-justified result)."""
    sign = -1 if code < 0x80 else 1
    mantissa = ~code
    exponent = (mantissa >> 4) & 0x7
    segment = exponent + 1
    mantissa &= 0xF
    step = 4 << segment
    return sign * ((0x80 << exponent) + step * mantissa + step // 2 - 4 * 33)


def ref_linear2alaw(sample):
    """ITU-T G.191 alaw_compress, one sample."""
    ix = (~sample) >> 4 if sample < 0 else sample >> 4
    if ix > 15:
        iexp = 1
        while ix > 16 + 15:
            ix >>= 1
            iexp += 1
        ix -= 16
        ix += iexp << 4
    if sample >= 0:
        ix |= 0x80
    return ix ^ 0x55


def ref_alaw2linear(code):
    """ITU-T G.191 alaw_expand, one sample."""
    ix = (code ^ 0x55) & 0x7F
    iexp = ix >> 4
    mant = ix & 0xF
    if iexp > 0:
        mant += 16
    mant = (mant << 4) + 0x8
    if iexp > 1:
        mant <<= iexp - 1
    return mant if code > 127 else -mant


ALL_LINEAR = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = np.arange(256, dtype=np.uint8)


# --------------------------------------------------------------------------- G.711

def test_ulaw_tables_match_reference_for_every_input_and_code():
    expected_enc = np.array([ref_linear2ulaw(v) for v in range(-32768, 32768)], np.uint8)
    np.testing.assert_array_equal(audio.to_8bit(ALL_LINEAR, "ulaw"), expected_enc)
    expected_dec = np.array([ref_ulaw2linear(c) for c in range(256)], np.int16)
    np.testing.assert_array_equal(audio.from_8bit(ALL_CODES, "ulaw"), expected_dec)


def test_alaw_tables_match_reference_for_every_input_and_code():
    expected_enc = np.array([ref_linear2alaw(v) for v in range(-32768, 32768)], np.uint8)
    np.testing.assert_array_equal(audio.to_8bit(ALL_LINEAR, "alaw"), expected_enc)
    expected_dec = np.array([ref_alaw2linear(c) for c in range(256)], np.int16)
    np.testing.assert_array_equal(audio.from_8bit(ALL_CODES, "alaw"), expected_dec)


def test_g711_known_values():
    enc = lambda values, fmt: audio.to_8bit(np.array(values, np.int16), fmt).tolist()
    dec = lambda codes, fmt: audio.from_8bit(bytes(codes), fmt).tolist()
    assert enc([0, -1, 32767, -32768, 8, -8], "ulaw") == [0xFF, 0x7F, 0x80, 0x00, 0xFE, 0x7E]
    assert dec([0x00, 0x7F, 0x80, 0xFF, 0xFE, 0x7E], "ulaw") == [-32124, 0, 32124, 0, 8, -8]
    assert enc([0, -1, 32767, -32768], "alaw") == [0xD5, 0x55, 0xAA, 0x2A]
    assert dec([0xD5, 0x55, 0x2A, 0xAA], "alaw") == [8, -8, -32256, 32256]


def test_reencoding_decoded_codes_is_identity_except_ulaw_negative_zero():
    for fmt, not_fixed in (("ulaw", [0x7F]), ("alaw", [])):
        again = audio.to_8bit(audio.from_8bit(ALL_CODES, fmt), fmt)
        assert np.flatnonzero(again != ALL_CODES).tolist() == not_fixed
    # the mu-law "negative zero" decodes to 0, which encodes as the positive zero
    assert audio.to_8bit(audio.from_8bit(b"\x7f", "ulaw"), "ulaw").tolist() == [0xFF]


def test_g711_is_monotonic_and_close():
    for fmt in ("ulaw", "alaw"):
        back = audio.from_8bit(audio.to_8bit(ALL_LINEAR, fmt), fmt).astype(np.int32)
        assert np.all(np.diff(back) >= 0), fmt
        error = np.abs(back - ALL_LINEAR.astype(np.int32))
        assert error.max() <= 1024, fmt  # the largest step (segment 7)
        small = np.abs(ALL_LINEAR.astype(np.int32)) < 64
        assert error[small].max() <= 8, fmt  # fine steps near silence
        # within each sign, the magnitude grows with the code's 7 bits (complemented for
        # mu-law, even bits toggled for A-law)
        table = audio.decode_table(fmt).astype(np.int32)
        flip = 0xFF if fmt == "ulaw" else 0x55
        for sign in (0, 0x80):
            codes = [c for c in range(256) if (c ^ flip) & 0x80 == sign]
            codes.sort(key=lambda c: (c ^ flip) & 0x7F)
            assert np.all(np.diff(np.abs(table[codes])) > 0), (fmt, sign)
        assert len(np.unique(table)) == (255 if fmt == "ulaw" else 256)  # mu-law: two zeros


def test_pcm_mapping_and_float_input():
    x = np.array([-1.0, -0.5, 0.0, 0.5, 127 / 128, 1.0, 2.0, -3.0])
    assert audio.to_8bit(x, "pcm").tolist() == [0, 64, 128, 192, 255, 255, 255, 0]
    assert audio.from_8bit(bytes([0, 64, 128, 192, 255]), "pcm").tolist() == \
        [-32768, -16384, 0, 16384, 32512]
    # every 8-bit value survives float -> 8-bit
    np.testing.assert_array_equal(audio.to_8bit((ALL_CODES - 128.0) / 128.0, "pcm"), ALL_CODES)
    # floats go through 16-bit linear for the G.711 laws; beyond +-1 they clip
    floats = np.array([0.0, 0.25, -0.25, 1.5, -1.5])
    for fmt in ("ulaw", "alaw"):
        linear = np.array([0, 8192, -8192, 32767, -32768], np.int16)
        np.testing.assert_array_equal(audio.to_8bit(floats, fmt), audio.to_8bit(linear, fmt))
    with pytest.raises(TorchRNNError, match="NaN"):
        audio.to_8bit(np.array([0.0, np.nan]), "ulaw")
    with pytest.raises(TorchRNNError, match="dtype int64"):
        audio.to_8bit(np.array([1, 2]), "ulaw")
    with pytest.raises(TorchRNNError, match="unknown 8-bit format"):
        audio.to_8bit(x, "mp3")


# --------------------------------------------------------------------------- WAV reading

def wav_file(path, tag, channels, rate, bits, payload, extensible=False, extra=b""):
    """A hand-made little-endian WAV (any format code, optionally WAVE_FORMAT_EXTENSIBLE)."""
    block_align = channels * max(1, bits // 8)
    fmt = struct.pack("<HHIIHH", 0xFFFE if extensible else tag, channels, rate,
                      rate * block_align, block_align, bits)
    if extensible:
        guid = struct.pack("<I", tag) + b"\x00\x00\x10\x00\x80\x00\x00\xAA\x00\x38\x9B\x71"
        fmt += struct.pack("<HHI", 22, bits, 0) + guid
    elif tag != 1:
        fmt += b"\x00\x00"
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra
    body += b"data" + struct.pack("<I", len(payload)) + payload + b"\x00" * (len(payload) & 1)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return str(path)


def test_read_pcm_widths_float_and_stereo(tmp_path):
    cases = {
        "u8": (np.array([0, 128, 255], np.uint8), [-1.0, 0.0, 127 / 128]),
        "i16": (np.array([0, 16384, -32768, 32767], np.int16), [0, 0.5, -1, 32767 / 32768]),
        "i32": (np.array([0, 2 ** 30, -2 ** 31], np.int32), [0, 0.5, -1]),
        "f32": (np.array([0.25, -0.75, 1.5], np.float32), [0.25, -0.75, 1.5]),
        "f64": (np.array([0.125, -1.0], np.float64), [0.125, -1.0]),
        "stereo": (np.array([[16384, 0], [-32768, -32768], [100, -100]], np.int16),
                   [0.25, -1.0, 0.0]),
        "quad": (np.array([[1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5]], np.float32),
                 [0.25, 0.5]),
    }
    for name, (data, expected) in cases.items():
        path = str(tmp_path / f"{name}.wav")
        wavfile.write(path, 8000, data)
        rate, samples = audio.read_wav(path)
        assert rate == 8000 and samples.dtype == np.float64 and samples.ndim == 1, name
        np.testing.assert_allclose(samples, expected, rtol=0, atol=1e-12, err_msg=name)
    info = audio.read_wav_info(str(tmp_path / "stereo.wav"))
    assert (info.channels, info.encoding) == (2, "16-bit PCM")


def test_read_24_bit_and_extensible(tmp_path):
    values = [0, 0x400000, -0x800000, 0x7FFFFF, -1]
    payload = b"".join(struct.pack("<i", v)[:3] for v in values)
    expected = np.array(values) / 2.0 ** 23
    for extensible in (False, True):
        path = wav_file(tmp_path / f"ext{extensible}.wav", 1, 1, 11025, 24, payload,
                        extensible=extensible)
        info = audio.read_wav_info(path)
        assert info.rate == 11025 and info.encoding == "24-bit PCM"
        np.testing.assert_allclose(info.samples, expected, rtol=0, atol=1e-12)


def test_read_g711_wav(tmp_path):
    codes = bytes(range(256))
    for tag, fmt in ((7, "ulaw"), (6, "alaw")):
        for extensible in (False, True):
            path = wav_file(tmp_path / f"{fmt}{extensible}.wav", tag, 1, 8000, 8, codes,
                            extensible=extensible, extra=b"fact" + struct.pack("<II", 4, 256))
            info = audio.read_wav_info(path)
            assert info.encoding == audio.FORMAT_NAMES[fmt]
            np.testing.assert_array_equal(info.samples * 32768, audio.from_8bit(codes, fmt))
        # stereo G.711 is averaged like everything else
        path = wav_file(tmp_path / f"{fmt}2.wav", tag, 2, 8000, 8, bytes([0x80, 0x00] * 3))
        lin = audio.from_8bit(bytes([0x80, 0x00]), fmt).astype(float)
        np.testing.assert_allclose(audio.read_wav(path)[1], [lin.mean() / 32768] * 3)


def test_unreadable_wavs_raise_one_clear_line(tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("Hello, this is not audio\n")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    adpcm = wav_file(tmp_path / "adpcm.wav", 2, 1, 8000, 4, b"\x01" * 64)
    mp3 = wav_file(tmp_path / "mp3.wav", 0x55, 1, 8000, 0, b"\xff\xfb" * 32)
    no_data = wav_file(tmp_path / "nodata.wav", 1, 1, 8000, 16, b"")
    float16 = wav_file(tmp_path / "half.wav", 3, 1, 8000, 16, b"\x00" * 8)
    expectations = [
        (str(text), "not a WAV file (no RIFF/WAVE header; it starts with b'Hello"),
        (str(empty), "not a WAV file (the file is empty)"),
        (adpcm, "unsupported WAV encoding: Microsoft ADPCM (format code 0x0002)"),
        (mp3, "unsupported WAV encoding: MPEG layer 3 (MP3) (format code 0x0055)"),
        (no_data, "the WAV file has no audio samples"),
        (float16, "unreadable WAV file (IEEE float, 16 bits)"),
        (str(tmp_path / "missing.wav"), "WAV file not found"),
    ]
    for path, message in expectations:
        with pytest.raises(TorchRNNError) as err:
            audio.read_wav(path)
        text_of = str(err.value)
        assert text_of.startswith(path + ": ") and message in text_of, text_of
        assert "\n" not in text_of


def test_corrupted_wavs_give_errors_not_tracebacks(tmp_path):
    rng = np.random.default_rng(3)
    good = str(tmp_path / "good.wav")
    wavfile.write(good, 8000, rng.integers(-300, 300, (40, 2)).astype(np.int16))
    original = open(good, "rb").read()
    path = tmp_path / "bad.wav"
    outcomes = set()
    for _ in range(400):
        data = bytearray(original)
        for pos in rng.integers(0, 48, rng.integers(1, 4)):
            data[pos] = rng.integers(0, 256)
        if rng.random() < 0.2:
            data = data[:rng.integers(0, len(data))]
        path.write_bytes(bytes(data))
        try:
            rate, samples = audio.read_wav(str(path))
            assert rate > 0 and samples.ndim == 1 and samples.size > 0
            outcomes.add("read")
        except TorchRNNError as err:
            assert str(err).startswith(f"{path}: ") and "\n" not in str(err)
            outcomes.add("error")
    assert outcomes == {"read", "error"}


# --------------------------------------------------------------------------- resampling

def test_resampled_lengths():
    for n, rate_in, rate_out, expected in [
            (44100, 44100, 11025, 11025), (44101, 44100, 11025, 11026),
            (44100, 44100, 8000, 8000), (44101, 44100, 8000, 8001),
            (1001, 22050, 11025, 501), (8000, 8000, 11025, 11025), (10, 11025, 11025, 10)]:
        out = audio.resample(np.zeros(n), rate_in, rate_out)
        assert out.size == expected == -(-n * rate_out // rate_in), (n, rate_in, rate_out)
    x = np.linspace(-1, 1, 100)
    same = audio.resample(x, 11025, 11025)
    assert same is not x and np.array_equal(same, x)


def test_resampling_keeps_a_sine_frequency():
    t = np.arange(44100) / 44100
    sine = 0.5 * np.sin(2 * np.pi * 1000 * t)
    for rate in (8000, 11025, 22050):
        out = audio.resample(sine, 44100, rate)
        spectrum = np.abs(np.fft.rfft(out))
        peak_hz = np.argmax(spectrum) * rate / out.size
        assert abs(peak_hz - 1000) <= 1, rate
        assert abs(np.abs(out[rate // 10:-rate // 10]).max() - 0.5) < 0.01


@pytest.mark.parametrize("rate_in, rate_out", [(44100, 11025), (44100, 8000), (48000, 11025),
                                               (8000, 11025), (22050, 11025), (32000, 11025),
                                               (11025, 8000)])
def test_blockwise_resampling_equals_resample_poly(rate_in, rate_out):
    x = np.random.default_rng(rate_in + rate_out).uniform(-1, 1, 30011)
    g = np.gcd(rate_in, rate_out)
    expected = resample_poly(x, rate_out // g, rate_in // g)
    calls = []
    got = audio.resample(x, rate_in, rate_out, progress=lambda d, t: calls.append((d, t)),
                         block=2000)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-13)
    assert len(calls) > 2 and calls[-1] == (x.size, x.size)
    assert all(a[0] < b[0] for a, b in zip(calls, calls[1:]))


def test_bad_rates():
    for rate in (0, -8000, 11025.0, "11025", True, audio.MAX_RATE + 1):
        with pytest.raises(TorchRNNError, match="rate"):
            audio.resample(np.zeros(10), 44100, rate)
    with pytest.raises(TorchRNNError, match="input sample rate"):
        audio.resample(np.zeros(10), 0, 8000)


# --------------------------------------------------------------------------- commands

def run(capsys, *argv):
    status = audio_cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def voice_wav(path, rate=44100, seconds=0.5, channels=2):
    """A 16-bit test WAV: a sine with harmonics and a little noise."""
    t = np.arange(int(rate * seconds)) / rate
    rng = np.random.default_rng(1)
    mono = 0.4 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 1330 * t)
    mono += 0.01 * rng.standard_normal(t.size)
    data = np.stack([mono, 0.8 * mono], axis=1) if channels == 2 else mono
    wavfile.write(str(path), rate, (data * 32767).astype(np.int16))
    return str(path)


def test_8bit_pcm_wav_to_bytes_to_wav_is_exact(tmp_path, capsys):
    rng = np.random.default_rng(7)
    original = np.concatenate([np.arange(256), rng.integers(0, 256, 5000)]).astype(np.uint8)
    src = tmp_path / "in.wav"
    wavfile.write(str(src), 11025, original)
    raw, back = tmp_path / "in.raw", tmp_path / "back.wav"
    status, out, _ = run(capsys, "encode", src, raw, "--format", "pcm", "--raw")
    assert status == 0 and "8-bit PCM, 11025 Hz, 1 channel" in out and "raw bytes" in out
    assert raw.read_bytes() == original.tobytes()
    status, out, _ = run(capsys, "decode", raw, back, "--format", "pcm", "--raw")
    assert status == 0 and "as an 8-bit PCM WAV" in out
    rate, data = wavfile.read(str(back))
    assert rate == 11025 and data.dtype == np.uint8
    np.testing.assert_array_equal(data, original)
    # and through bcl text too, with the library functions
    text = tmp_path / "in.txt"
    summary = audio.encode_audio(str(src), str(text), rate=11025, fmt="pcm")
    assert summary.table_path == str(tmp_path / "in.bcl") and summary.clipped == 0
    audio.decode_audio(str(text), str(back), rate=11025, fmt="pcm")
    np.testing.assert_array_equal(wavfile.read(str(back))[1], original)


def test_encode_text_then_decode_sampled_text_with_newline(tmp_path, capsys):
    src = voice_wav(tmp_path / "voice.wav")
    text, table = tmp_path / "voice.txt", tmp_path / "voice.bcl"
    status, out, err = run(capsys, "encode", src, text, "--quiet")
    assert status == 0 and out == "" and err == ""
    assert table.stat().st_size == 256
    status, out, _ = run(capsys, "encode", src, text)
    expected = audio.wav_to_bytes(src, 11025, "ulaw")
    assert len(expected) == 5513  # ceil(22050 / 4)
    assert out.count("\n") == 1 and f"table {table}" in out
    assert "16-bit PCM, 44100 Hz, 2 channels, 0.50 s" in out
    assert f"{len(expected)} samples of mu-law at 11025 Hz (0.50 s)" in out
    content = text.read_text("utf-8")
    assert len(content) == len(expected) and content[0] in map(chr, BCL_ALPHABET[:92])

    sampled = tmp_path / "sample.txt"
    sampled.write_text(content + "\n", "utf-8")  # what a sampler writes
    out_wav = tmp_path / "out.wav"
    status, out, _ = run(capsys, "decode", sampled, out_wav, "--table", table)
    assert status == 0
    assert f"{len(content) + 1} characters, 1 not in the table (skipped)" in out
    assert "as a 16-bit PCM WAV" in out
    rate, data = wavfile.read(str(out_wav))
    assert rate == 11025 and data.dtype == np.int16
    np.testing.assert_array_equal(data, audio.from_8bit(expected, "ulaw"))

    # replacing instead of skipping, and refusing
    status, out, _ = run(capsys, "decode", sampled, out_wav, "--table", table,
                         "--unknown", "0x80")
    assert status == 0 and "each written as byte 128 (0x80)" in out
    assert wavfile.read(str(out_wav))[1][-1] == audio.from_8bit(b"\x80", "ulaw")[0]
    status, _, err = run(capsys, "decode", sampled, out_wav, "--table", table,
                         "--unknown", "error")
    assert status == 1 and "'\\n' (U+000A)" in err and err.count("\n") == 1


def test_offset_mode_alaw_and_kept_rate(tmp_path, capsys):
    src = voice_wav(tmp_path / "v.wav", rate=8000, channels=1)
    text, back = tmp_path / "v.txt", tmp_path / "back.wav"
    summary = audio.encode_audio(src, str(text), rate=None, fmt="alaw", mode="offset")
    assert summary.rate == 8000 and summary.table_path is None
    assert not (tmp_path / "v.bcl").exists()
    content = text.read_text("utf-8")
    assert all(OFFSET_BASE <= ord(c) < OFFSET_BASE + 256 for c in content)
    status, out, _ = run(capsys, "decode", text, back, "--mode", "offset", "--format", "alaw",
                         "--rate", "8000")
    assert status == 0 and "0 not in the table" in out
    expected = audio.from_8bit(audio.wav_to_bytes(src, None, "alaw"), "alaw")
    np.testing.assert_array_equal(wavfile.read(str(back))[1], expected)


def test_progress_callback_and_module_entry_point(tmp_path):
    src = voice_wav(tmp_path / "p.wav", seconds=0.2)
    calls = []
    audio.encode_audio(src, str(tmp_path / "p.txt"), progress=lambda d, t: calls.append((d, t)))
    assert calls and calls[-1] == (8820, 8820)
    result = subprocess.run([sys.executable, "-m", "torchrnn_py.audio", "decode",
                             str(tmp_path / "p.txt"), str(tmp_path / "p.wav.out.wav")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "2205 characters, 0 not in the table" in result.stdout


def test_command_errors_are_one_line(tmp_path, capsys):
    good = voice_wav(tmp_path / "good.wav", seconds=0.1)
    notwav = tmp_path / "readme.txt"
    notwav.write_text("just text\n")
    adpcm = wav_file(tmp_path / "adpcm.wav", 2, 1, 8000, 4, b"\x01" * 64)
    mp3 = wav_file(tmp_path / "mp3.wav", 0x55, 1, 8000, 0, b"\xff\xfb" * 32)
    out_txt = tmp_path / "o.txt"
    audio.encode_audio(good, str(out_txt))
    cyrillic = tmp_path / "cyr.txt"
    cyrillic.write_text("привет мир " * 50, "utf-8")
    cases = [
        (("encode", notwav, out_txt), 1, f"{notwav}: not a WAV file"),
        (("encode", adpcm, out_txt), 1, "Microsoft ADPCM (format code 0x0002)"),
        (("encode", mp3, out_txt), 1, "MPEG layer 3 (MP3)"),
        (("encode", good, out_txt, "--rate", "0"), 2, "invalid --rate value '0'"),
        (("encode", good, out_txt, "--rate", "-8000"), 2, "invalid --rate value '-8000'"),
        (("decode", out_txt, tmp_path / "x.wav", "--rate", "11025.5"), 2,
         "expected a whole number"),
        (("encode", tmp_path / "absent.wav", out_txt), 1, "absent.wav: WAV file not found"),
        (("encode", good, tmp_path / "nodir" / "o.txt"), 1, "does not exist"),
        (("decode", out_txt, tmp_path / "nodir" / "o.wav"), 1, "does not exist"),
        (("decode", cyrillic, tmp_path / "c.wav", "--table", tmp_path / "o.bcl"), 1,
         "550 of 550 characters are not in the table"),
        (("decode", out_txt, tmp_path / "c.wav", "--mode", "offset"), 1,
         "not offset-mode BinToUTF8 characters"),
        (("decode", cyrillic, tmp_path / "c.wav"), 1,
         "cyr.bcl: .bcl table not found; bcl mode needs the table written when encoding "
         "(give it with --table)"),
        (("decode", notwav, tmp_path / "c.wav", "--raw", "--table", tmp_path / "o.bcl"), 2,
         "--table is for BinToUTF8 text"),
        (("encode", good, out_txt, "--mode", "offset", "--table", tmp_path / "t.bcl"), 2,
         "offset mode has no table"),
        (("encode", good, good), 1, "would overwrite the input WAV"),
        (("encode", good, out_txt, "--format", "mp3"), 2, "invalid choice: 'mp3'"),
        (("frobnicate",), 2, "invalid choice: 'frobnicate'"),
    ]
    for argv, code, message in cases:
        status, out, err = run(capsys, *argv)
        assert status == code, (argv, err)
        assert err.startswith("torchrnn-audio: error: ") and err.count("\n") == 1, err
        assert message in err, (argv, err)
        assert out == ""
    # failed runs leave nothing behind
    assert not (tmp_path / "c.wav").exists() and not (tmp_path / "x.wav").exists()
    assert not any(name.endswith(".tmp") for name in os.listdir(tmp_path))


def test_bintoutf8_options_are_checked_once_by_the_library(tmp_path):
    """encode_audio/decode_audio refuse what the command line refuses, as usage errors, before
    they read any file (the command line passes None for a flag not given)."""
    absent = str(tmp_path / "absent.wav")
    raw_msg = "--raw has no table, mode or unknown characters"
    cases = [
        (audio.encode_audio, dict(raw=True, table_path="t.bcl"),
         f"--table is for BinToUTF8 text; {raw_msg}"),
        (audio.encode_audio, dict(raw=True, mode="bcl"),
         f"--mode is for BinToUTF8 text; {raw_msg}"),
        (audio.decode_audio, dict(raw=True, mode="offset", unknown=0, table_path="t.bcl"),
         f"--table and --mode and --unknown are for BinToUTF8 text; {raw_msg}"),
        (audio.encode_audio, dict(mode="offset", table_path="t.bcl"),
         "--table is for bcl mode; offset mode has no table"),
        (audio.decode_audio, dict(mode="offset", table_path="t.bcl"),
         "--table is for bcl mode; offset mode has no table"),
    ]
    for function, options, message in cases:
        with pytest.raises(UsageError) as caught:
            function(absent, str(tmp_path / "out"), **options)
        assert str(caught.value) == message, (function, options)
    assert audio.check_text_options(False) == "bcl"
    assert audio.check_text_options(True) is None
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- rate bounds (issue 9)

def _wav_declaring(path, rate, frames=2000):
    """A small 16-bit mono WAV whose header claims ``rate`` Hz (bytes 24..27 of the fmt)."""
    wavfile.write(str(path), 8000, np.zeros(frames, dtype=np.int16))
    data = bytearray(path.read_bytes())
    data[24:28] = struct.pack("<I", rate)
    data[28:32] = struct.pack("<I", rate * 2)             # byte rate, for consistency
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("rate", [5_000_000, 2 ** 31 - 1, 1, 999])
def test_wav_rates_out_of_range_are_one_line(tmp_path, capsys, rate):
    src = _wav_declaring(tmp_path / "odd.wav", rate)
    assert src.stat().st_size < 5000
    started = time.monotonic()
    status, out, err = run(capsys, "encode", src, tmp_path / "out.txt")
    assert time.monotonic() - started < 5
    assert status == 1 and out == ""
    assert err.strip().endswith(f"{src}: the WAV header says a sample rate of {rate} Hz; "
                                f"expected 1000 to 768000 Hz"), err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out.txt").exists()


def test_resampling_filter_size_is_bounded(tmp_path):
    with pytest.raises(TorchRNNError, match=r"^resampling 767999 Hz to 1000 Hz would need a "
                                            r"filter of 15359981 taps"):
        audio.resample(np.zeros(100), 767999, 1000)
    src = _wav_declaring(tmp_path / "odd.wav", 767999)
    with pytest.raises(TorchRNNError, match=f"^{src}: resampling 767999 Hz"):
        audio.encode_audio(str(src), str(tmp_path / "out.txt"), rate=1000)
    assert audio.resample(np.zeros(441), 44100, 8000).shape == (80,)   # 80/441 is fine


def test_rate_flag_below_the_minimum_is_a_usage_error(tmp_path, capsys):
    src = tmp_path / "in.wav"
    wavfile.write(str(src), 8000, np.zeros(100, dtype=np.int16))
    status, out, err = run(capsys, "encode", src, tmp_path / "out.txt", "--rate", "999")
    assert status == 2 and "between 1000 and 768000 Hz" in err
    with pytest.raises(TorchRNNError, match="below 1000 Hz"):
        audio.write_wav(str(tmp_path / "x.wav"), 500, b"\x80" * 10, "pcm")
