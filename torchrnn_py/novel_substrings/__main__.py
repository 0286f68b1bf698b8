"""``python -m torchrnn_py.novel_substrings``: the command (torchrnn_py/cli/novel_substrings.py)."""
import sys

from ..cli.novel_substrings import main

sys.exit(main())
