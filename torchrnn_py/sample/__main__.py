"""``python -m torchrnn_py.sample``: the command (torchrnn_py/cli/sample.py)."""
import sys

from ..cli.sample import main

sys.exit(main())
