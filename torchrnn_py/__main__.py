"""``python -m torchrnn_py <command> [flags]``: every command of the package in one place."""
import importlib
import sys

# command -> (module, function): the names people know from torch-rnn and BinToUTF8.
COMMANDS = {
    "preprocess": ("torchrnn_py.preprocess", "main"),
    "train": ("torchrnn_py.train", "main"),
    "sample": ("torchrnn_py.sample", "main"),
    "eval": ("torchrnn_py.evaluate", "main"),
    "novel_substrings": ("torchrnn_py.novel_substrings", "main"),
    "plot": ("torchrnn_py.plot", "main"),
    "audio": ("torchrnn_py.audio", "main"),
    "bintoutf8": ("torchrnn_py.bintoutf8", "main_encode"),
    "utf8tobin": ("torchrnn_py.bintoutf8", "main_decode"),
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print("usage: python -m torchrnn_py <command> [flags]\ncommands: "
              + ", ".join(COMMANDS) + "\n(each command takes -h for its own flags)")
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"torchrnn_py: error: unknown command {argv[0]!r} (one of: "
              f"{', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    module, function = COMMANDS[argv[0]]
    return getattr(importlib.import_module(module), function)(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
