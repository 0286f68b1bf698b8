"""torchrnn_py: torch-rnn's character-level language models on PyTorch.

Each stage lives in its own module: preprocess, data, modules, model, optim, train, sample,
evaluate, checkpoint, t7, bintoutf8, vocab, rng; the command lines (``main(argv)``) and the
one table of commands are in torchrnn_py/cli/. The stage functions share their module's
name, so they are imported from it (``from torchrnn_py.train import train``); the other
public names are re-exported here lazily, so that ``import torchrnn_py`` does not import
torch until a name that needs it is used (preprocess and bintoutf8 stay light).
"""
import importlib

from .errors import TorchRNNError

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "read_vocab": "vocab", "write_vocab": "vocab", "Vocab": "vocab",
    "DataLoader": "data",
    "LSTM": "modules", "VanillaRNN": "modules", "GRU": "modules", "Dropout": "modules",
    "LanguageModel": "model",
    "TorchAdam": "optim",
    "TorchGenerator": "rng",
    "load_checkpoint": "checkpoint", "load_model": "checkpoint",
    "save_checkpoint": "checkpoint",
    "read_t7": "t7", "write_t7": "t7",
    "encode_file": "bintoutf8", "decode_file": "bintoutf8",
    "encode_bytes": "bintoutf8", "decode_text": "bintoutf8",
    "novel_fractions": "novel_substrings",
}

__all__ = ["TorchRNNError", "__version__"] + sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
