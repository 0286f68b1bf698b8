"""``python -m torchrnn_py.audio encode|decode ...`` (the command: torchrnn_py/cli/audio.py)."""
import sys

from ..cli.audio import main

sys.exit(main())
