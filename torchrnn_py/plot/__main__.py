"""``python -m torchrnn_py.plot``: the command (torchrnn_py/cli/plot.py)."""
import sys

from ..cli.plot import main

sys.exit(main())
