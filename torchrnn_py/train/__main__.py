"""``python -m torchrnn_py.train``: the command (torchrnn_py/cli/train.py)."""
import sys

from ..cli.train import main

sys.exit(main())
