"""Convert a char-rnn checkpoint into a torch-rnn one (``.t7`` plus its ``.json`` twin).

The model is char-rnn's, laid out as torch-rnn's ``nn.LanguageModel`` (an identity
LookupTable for the one-hot input, one LSTM/VanillaRNN/GRU per layer, the decoder as the
Linear): torchrnn_py/charrnn/checkpoint.py. The file is written as torchrnn-train writes its
checkpoints, so the original torch-rnn's sample.lua and train.lua ``-init_from`` read the
LSTM and RNN ones (the original has no GRU). char-rnn's options are kept in the ``.t7``.
"""
import dataclasses
import math
import os

from ..charrnn import load_charrnn
from ..checkpoint import Checkpoint, json_twin, read_checkpoint_json
from ..errors import TorchRNNError
from ..fileio import check_distinct, check_output_path, file_kind

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
    _check_replaceable(output_path, json_path)
    charrnn = load_charrnn(input_path)
    fields = charrnn.torchrnn_fields()
    _check_finite_fields(fields, input_path)
    checkpoint = Checkpoint.from_table(fields)
    checkpoint.save(output_path, json_path)
    paths = [output_path, json_path]
    for path in paths if on_written is not None else ():
        on_written(path)
    return Converted(checkpoint, charrnn.model_type, paths)


def _check_replaceable(output_path, json_path):
    """A checkpoint is two files, so OUT must be a file (not a device or FIFO, whose
    ``.json`` twin would be a new file beside /dev), and a ``.json`` already there is
    replaced only if it is a checkpoint's (not, say, preprocess's vocabulary)."""
    if os.path.exists(output_path) and not os.path.isfile(output_path):
        raise TorchRNNError(f"{output_path}: a torch-rnn checkpoint is two files "
                            f"(OUT.t7 and OUT.json): OUT must be a file name, found "
                            f"{file_kind(os.stat(output_path).st_mode)}")
    if os.path.isfile(json_path):
        try:
            data = read_checkpoint_json(json_path)
        except TorchRNNError:
            data = None
        if not isinstance(data, dict) or not ("i" in data or "opt" in data):
            raise TorchRNNError(f"{json_path}: exists and is not a checkpoint's JSON; "
                                f"converting to {output_path} would replace it (choose "
                                f"another name)")


def _check_finite_fields(fields, input_path):
    """The JSON holds numbers only: a NaN or infinite iteration or loss is refused."""
    numbers = [fields["i"]] if fields["i"] is not None else []
    for key in ("train_loss_history", "val_loss_history"):
        numbers += fields[key]
    if any(not math.isfinite(v) for v in numbers) or \
            (fields["i"] is not None and (fields["i"] != int(fields["i"]) or fields["i"] < 0)):
        raise TorchRNNError(f"{input_path}: its iteration count or loss histories hold NaN, "
                            f"infinity or a fraction, which a torch-rnn checkpoint cannot "
                            f"hold; refusing to convert it")
