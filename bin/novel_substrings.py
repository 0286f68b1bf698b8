#!/usr/bin/env python3
"""Launcher with the familiar name; works from a clone without installing the package."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from torchrnn_py.novel_substrings import main  # noqa: E402

sys.exit(main())
