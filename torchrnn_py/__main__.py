"""``python -m torchrnn_py <command> [flags]``: every command of the package, from the one
table in torchrnn_py/cli/__init__.py."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
