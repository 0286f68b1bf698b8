"""``python -m torchrnn_py.bintoutf8 encode|decode ...`` (the commands: torchrnn_py/cli/bintoutf8.py)."""
import sys

from ..cli.bintoutf8 import dispatch

sys.exit(dispatch(sys.argv[1:]))
