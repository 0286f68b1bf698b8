"""torchrnn_py: torch-rnn's character-level language models on PyTorch.

The public API is re-exported here; each stage lives in its own module.
"""
from .errors import TorchRNNError

__version__ = "0.1.0"

__all__ = ["TorchRNNError", "__version__"]
