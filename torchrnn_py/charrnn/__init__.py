"""char-rnn (Karpathy's, torch-rnn's predecessor): its checkpoints, read as LanguageModels.

- :mod:`.checkpoint`: :func:`load_charrnn` -> :class:`CharRNNCheckpoint` (the model, its
  options and loss histories);
- :mod:`.graph`: the nngraph gModule as a graph of nodes that can be run;
- :mod:`.topology`: which Linear is which, from the graph's wiring;
- :mod:`.sampling`: char-rnn's sample.lua, draw for draw (:func:`sample_bytes`);
- :mod:`.sample_lua`: the whole of sample.lua, options to output (torchrnn-charrnn-sample);
- :mod:`.write`: checkpoints as char-rnn's train.lua writes them (:mod:`.luatable`: the order
  LuaJIT keeps a table's keys in).
"""
from .checkpoint import CharRNNCheckpoint, charrnn_from_t7, is_charrnn, load_charrnn
from .sampling import sample_bytes

__all__ = ["CharRNNCheckpoint", "charrnn_from_t7", "is_charrnn", "load_charrnn",
           "sample_bytes"]
