"""Convert a char-rnn checkpoint into a torch-rnn one (``.t7`` plus its ``.json`` twin).

The model is char-rnn's, laid out as torch-rnn's ``nn.LanguageModel`` (an identity
LookupTable for the one-hot input, one LSTM/VanillaRNN/GRU per layer, the decoder as the
Linear): torchrnn_py/charrnn/checkpoint.py. The file is written as torchrnn-train writes its
checkpoints, so the original torch-rnn's sample.lua and train.lua ``-init_from`` read the
LSTM and RNN ones (the original has no GRU). char-rnn's options are kept in the ``.t7``.
"""
import dataclasses

from ..charrnn import load_charrnn
from ..checkpoint import Checkpoint, json_twin
from ..fileio import check_distinct, check_output_path

PROG = "torchrnn-convert"


@dataclasses.dataclass
class Converted:
    """What :func:`convert` wrote: the checkpoint, its ``model_type``, and the ``paths``."""
    checkpoint: Checkpoint
    model_type: str
    paths: list


def convert(input_path, output_path, on_written=None):
    """Read the char-rnn checkpoint ``input_path``, write the torch-rnn checkpoint
    ``output_path`` and its JSON twin -> :class:`Converted`. ``on_written(path)`` is called
    for each file once both are complete. Nothing is written if anything fails."""
    json_path = json_twin(output_path)
    check_distinct(input_checkpoint=input_path, output_checkpoint=output_path,
                   output_json=json_path)
    check_output_path(output_path, "output checkpoint")
    check_output_path(json_path, "output JSON")
    charrnn = load_charrnn(input_path)
    checkpoint = Checkpoint.from_table(charrnn.torchrnn_fields())
    checkpoint.save(output_path, json_path)
    paths = [output_path, json_path]
    for path in paths if on_written is not None else ():
        on_written(path)
    return Converted(checkpoint, charrnn.model_type, paths)
