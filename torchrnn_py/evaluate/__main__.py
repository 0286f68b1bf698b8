"""``python -m torchrnn_py.evaluate``: the command (torchrnn_py/cli/evaluate.py)."""
import sys

from ..cli.evaluate import main

sys.exit(main())
