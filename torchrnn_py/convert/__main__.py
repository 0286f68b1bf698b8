"""``python -m torchrnn_py.convert``: the command (torchrnn_py/cli/convert.py)."""
import sys

from ..cli.convert import main

sys.exit(main())
