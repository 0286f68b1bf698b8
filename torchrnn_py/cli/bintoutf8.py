"""``bintoutf8 IN [OUT]`` and ``utf8tobin IN [OUT]``: the command lines of the BinToUTF8 codec
(:mod:`torchrnn_py.bintoutf8`), and ``python -m torchrnn_py.bintoutf8 encode|decode ...``.

They parse the flags and print the original's one-line summary; the options are checked by
the codec (:func:`~torchrnn_py.bintoutf8.encode_file`, :func:`~torchrnn_py.bintoutf8.decode_file`).
"""
import os

from ..bintoutf8 import (MODES, decode_file, default_decoded_path, default_table_path,
                         default_text_path, encode_file)
from ..cmdline import ArgumentParser, UsageError, print_stderr, run_main
from ..fileio import check_stdout_distinct


def parse_unknown(text):
    """``--unknown`` value: 'skip', 'error', or a byte as decimal or 0x hex."""
    value = text.strip().lower()
    if value in ("skip", "error"):
        return value
    try:
        number = int(value[2:], 16) if value.startswith("0x") else int(value, 10)
    except ValueError:
        number = None
    if number is None or not 0 <= number <= 255:
        raise UsageError(f"invalid --unknown value {text!r}: expected skip, error, or a byte "
                         f"0..255 (decimal or 0x hex)")
    return number


def _encode_parser():
    p = ArgumentParser(
        prog="bintoutf8",
        description="Encode any file as UTF-8 text, one character per byte (BinToUTF8).")
    p.add_argument("input", help="the file to encode")
    p.add_argument("output", nargs="?",
                   help="the text to write (default: INPUT.txt)")
    p.add_argument("--mode", choices=MODES, default="bcl",
                   help="bcl: ASCII first, needs the .bcl table to decode (default); "
                        "offset: byte b -> U+3900+b, no table")
    p.add_argument("--table", metavar="T.bcl",
                   help="where to write the table in bcl mode (default: OUTPUT with its "
                        "extension replaced by .bcl)")
    p.add_argument("--use-table", metavar="T.bcl",
                   help="bcl mode: encode with this existing table instead of building one "
                        "(e.g. to encode a seed for a model trained on that table)")
    return p


def _encode_command(argv):
    args = _encode_parser().parse_args(argv)
    check_stdout_distinct(input_file=args.input, table=args.use_table)   # the summary line
    result = encode_file(args.input, args.output, mode=args.mode, table_path=args.table,
                         use_table=args.use_table)
    out = args.output or default_text_path(args.input)
    line = (f"{args.input}: {result.bytes_in} bytes -> {out}: {result.chars_out} characters "
            f"({result.text_bytes} bytes of UTF-8, {args.mode} mode)")
    if result.table_path:
        line += f"; table {result.table_path}"
    print(line)
    return 0


def _decode_parser():
    p = ArgumentParser(
        prog="utf8tobin",
        description="Decode BinToUTF8 text (e.g. sampled by a model) back to bytes.")
    p.add_argument("input", help="the UTF-8 text to decode")
    p.add_argument("output", nargs="?",
                   help="the file to write (default: INPUT with its extension replaced by .bin)")
    p.add_argument("--mode", choices=MODES, default="bcl",
                   help="the mode the text was encoded with (default: bcl)")
    p.add_argument("--table", metavar="T.bcl",
                   help="the table written when encoding (default: INPUT with its extension "
                        "replaced by .bcl)")
    p.add_argument("--unknown", type=parse_unknown, default="skip", metavar="skip|error|BYTE",
                   help="characters not in the table (a trailing newline, a BOM): skip them "
                        "(default), stop with an error, or write BYTE (e.g. 0x80, silence "
                        "in unsigned 8-bit PCM)")
    return p


def _decode_command(argv):
    args = _decode_parser().parse_args(argv)
    check_stdout_distinct(input_file=args.input,
                          table=args.table or default_table_path(args.input))
    unknown = decode_file(args.input, args.output, mode=args.mode, table_path=args.table,
                          unknown=args.unknown)            # (it checks the default's place)
    out = args.output or default_decoded_path(args.input)
    size = os.path.getsize(out)
    if args.unknown == "skip":
        fate = "skipped"
    elif args.unknown == "error":
        fate = "none allowed"
    else:
        fate = f"each written as byte {args.unknown} (0x{args.unknown:02X})"
    print(f"{args.input} -> {out}: {size} bytes; {unknown} character"
          f"{'' if unknown == 1 else 's'} not in the table ({fate})")
    return 0


def main_encode(argv=None):
    """``bintoutf8 IN [OUT] [--mode bcl|offset] [--table T.bcl] [--use-table T.bcl]``."""
    return run_main("bintoutf8", _encode_command, argv)


def main_decode(argv=None):
    """``utf8tobin IN [OUT] [--mode bcl|offset] [--table T.bcl] [--unknown skip|error|BYTE]``."""
    return run_main("utf8tobin", _decode_command, argv)


def dispatch(argv):
    """``python -m torchrnn_py.bintoutf8 encode|decode ...``."""
    commands = {"encode": main_encode, "decode": main_decode}
    if not argv or argv[0] not in commands:
        print_stderr("usage: python -m torchrnn_py.bintoutf8 encode|decode ... (-h for help)")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return commands[argv[0]](argv[1:])
