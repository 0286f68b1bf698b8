"""``torchrnn-audio encode IN.wav OUT.txt`` / ``decode IN.txt OUT.wav``: the command line of
:mod:`torchrnn_py.audio`.

It parses the flags and prints the one-line summary; the options are checked by the
library (:func:`torchrnn_py.audio.encode_audio`, :func:`~torchrnn_py.audio.decode_audio`).
"""
import os

from ..audio import (DEFAULT_RATE, FORMAT_NAMES, FORMATS, MAX_RATE, MIN_RATE, decode_audio,
                     encode_audio)
from ..bintoutf8 import MODES
from ..cmdline import ArgumentParser, UsageError, run_main
from ..fileio import check_stdout_distinct
from ..progress import ProgressLine
from .bintoutf8 import parse_unknown

PROG = "torchrnn-audio"


def parse_rate(text):
    """``--rate`` value: a whole number of Hz, MIN_RATE..MAX_RATE."""
    try:
        value = int(text.strip(), 10)
    except ValueError:
        raise UsageError(f"invalid --rate value {text!r}: expected a whole number of samples "
                         f"per second (e.g. {DEFAULT_RATE})") from None
    if not MIN_RATE <= value <= MAX_RATE:
        raise UsageError(f"invalid --rate value {text!r}: the sample rate must be between "
                         f"{MIN_RATE} and {MAX_RATE} Hz")
    return value


def _add_common_flags(p, verb):
    """The flags encode and decode share; ``verb`` says what --rate does."""
    p.add_argument("--rate", type=parse_rate, default=DEFAULT_RATE, metavar="HZ",
                   help=f"sample rate to {verb} (default: {DEFAULT_RATE})")
    p.add_argument("--format", choices=FORMATS, default="ulaw", dest="fmt",
                   help="8-bit format: ulaw (G.711 mu-law, default), alaw (G.711 A-law) "
                        "or pcm (unsigned, silence 0x80)")
    p.add_argument("--raw", action="store_true",
                   help="headerless bytes instead of BinToUTF8 text (no table)")
    p.add_argument("--mode", choices=MODES, default=None,
                   help="BinToUTF8 mode: bcl (ASCII first, needs the .bcl table; "
                        "default) or offset (U+3900+byte, no table)")
    p.add_argument("--quiet", action="store_true",
                   help="print nothing but errors (no summary, no progress line)")


def build_parser():
    """``torchrnn-audio encode|decode ...``."""
    parser = ArgumentParser(
        prog=PROG, description="Turn WAV audio into 8-bit BinToUTF8 text for torch-rnn, "
                               "and text sampled from a model back into a WAV file.")
    commands = parser.add_subparsers(dest="command", metavar="encode|decode", required=True)

    enc = commands.add_parser(
        "encode", help="WAV -> mono, resampled, 8-bit -> BinToUTF8 text (or raw bytes)",
        description="WAV -> mono -> resampled -> 8-bit -> BinToUTF8 text (or raw bytes).")
    enc.add_argument("input", help="the WAV file (PCM 8-32 bit, float, mu-law or A-law)")
    enc.add_argument("output", help="the text (or, with --raw, the bytes) to write")
    dec = commands.add_parser(
        "decode", help="BinToUTF8 text (or raw bytes) -> WAV",
        description="BinToUTF8 text, e.g. sampled from a model (or raw 8-bit bytes) -> WAV. "
                    "mu-law and A-law are written as 16-bit PCM, pcm as 8-bit unsigned PCM.")
    dec.add_argument("input", help="the text (or, with --raw, the bytes) to decode")
    dec.add_argument("output", help="the WAV file to write")
    for p, verb in ((enc, "resample to"), (dec, "play at")):
        _add_common_flags(p, verb)
    enc.add_argument("--table", metavar="T.bcl",
                     help="where to write the table in bcl mode (default: OUTPUT with its "
                          "extension replaced by .bcl)")
    dec.add_argument("--table", metavar="T.bcl",
                     help="the table written when encoding (default: INPUT with its "
                          "extension replaced by .bcl)")
    dec.add_argument("--unknown", type=parse_unknown, default=None, metavar="skip|error|BYTE",
                     help="characters not in the table (a trailing newline, a BOM): skip "
                          "them (default), stop with an error, or write BYTE (e.g. 0x80)")
    return parser


def _plural(n, word):
    return f"{n} {word}{'' if n == 1 else 's'}"


def _encode_summary(args, s):
    channels = _plural(s.source_channels, "channel")
    line = (f"{args.input}: {s.source_encoding}, {s.source_rate} Hz, {channels}, "
            f"{s.source_seconds:.2f} s -> {args.output}: {_plural(s.samples, 'sample')} of "
            f"{FORMAT_NAMES[s.fmt]} at {s.rate} Hz ({s.seconds:.2f} s), ")
    if s.mode is None:
        line += f"{s.out_bytes} raw bytes"
    else:
        line += f"{s.out_bytes} bytes of UTF-8 text ({s.mode} mode)"
    if s.table_path:
        line += f"; table {s.table_path}"
    if s.clipped:
        line += f"; {_plural(s.clipped, 'sample')} clipped"
    return line


def _decode_summary(args, s):
    if args.raw:
        line = f"{args.input}: {s.chars} bytes"
    else:
        unknown = "skip" if args.unknown is None else args.unknown
        if unknown == "skip":
            fate = "skipped"
        elif unknown == "error":
            fate = "none allowed"
        else:
            fate = f"each written as byte {unknown} (0x{unknown:02X})"
        line = (f"{args.input}: {_plural(s.chars, 'character')}, {s.unknown} not in the "
                f"table ({fate})")
    line += (f" -> {args.output}: {_plural(s.samples, 'sample')} of {FORMAT_NAMES[s.fmt]} at "
             f"{s.rate} Hz ({s.seconds:.2f} s) as {'an' if s.wav_bits == 8 else 'a'} "
             f"{s.wav_bits}-bit PCM WAV")
    if s.table_path:
        line += f"; table {s.table_path}"
    return line


def _command(argv):
    args = build_parser().parse_args(argv)
    name = os.path.basename(args.input)
    encoding = args.command == "encode"
    if not args.quiet:                        # the summary is printed: not into an input
        check_stdout_distinct(input_file=args.input, table=None if encoding else args.table)
    with ProgressLine(f"{args.command} {name}", unit="samples" if encoding else "chars",
                      enabled=False if args.quiet else None) as line:
        if encoding:
            summary = encode_audio(args.input, args.output, rate=args.rate, fmt=args.fmt,
                                   raw=args.raw, table_path=args.table, mode=args.mode,
                                   progress=line.update)
        else:
            summary = decode_audio(args.input, args.output, rate=args.rate, fmt=args.fmt,
                                   table_path=args.table, raw=args.raw, mode=args.mode,
                                   unknown=args.unknown, progress=line.update)
    if not args.quiet:
        print(_encode_summary(args, summary) if encoding else _decode_summary(args, summary))
    return 0


def main(argv=None):
    """``torchrnn-audio encode IN.wav OUT.txt [...]`` / ``decode IN.txt OUT.wav [...]``."""
    return run_main(PROG, _command, argv)
