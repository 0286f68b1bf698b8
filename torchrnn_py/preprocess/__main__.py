"""``python -m torchrnn_py.preprocess``: the command (torchrnn_py/cli/preprocess.py)."""
import sys

from ..cli.preprocess import main

sys.exit(main())
