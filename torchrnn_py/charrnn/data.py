"""char-rnn's data folder and minibatches, as its util/CharSplitLMMinibatchLoader.lua makes them.

``<data_dir>/input.txt`` is read as bytes; every distinct byte is a token, numbered 1..V by
byte value (``vocab.t7``: a table {byte: id}); ``data.t7`` is a ByteTensor of the ids. Both are
written once and reused while they are not older than input.txt (whole seconds, as lfs
compares them); reused files are checked against input.txt, so a ``data.t7`` made from
another input is refused in one line instead of trained on. The data is cut to a multiple of
``batch_size * seq_length``; ``y`` is ``x`` shifted by one with ``y[-1] = x[0]``; the batches
are ``data.view(batch_size, -1)`` split into ``seq_length`` columns, taken in order for
train, then val, then test (tests/fixtures/charrnn/README.md, "train.lua and the loader").
Printed lines go through ``say(text)``, without the TAB that th's print adds.
"""
import dataclasses
import math
import os
import stat

import numpy as np
import torch

from ..errors import TorchRNNError
from ..fileio import atomic_outputs, check_distinct, check_input_file, file_kind
from ..t7 import dumps_t7, read_t7

INPUT_NAME, VOCAB_NAME, DATA_NAME = "input.txt", "vocab.t7", "data.t7"
SPLIT_NAMES = ("train", "val", "test")
MAX_VOCAB = 255                  # data.t7 is a ByteTensor: id 256 does not fit
FEW_BATCHES = 50                 # below this the loader prints its WARNING line
FRACTION_SLACK = 1e-9            # train_frac + val_frac may exceed 1 by rounding only


@dataclasses.dataclass(eq=False)
class CharSplitLoader:
    """The minibatches of one data folder. ``x_batches``/``y_batches``: lists of (B, T)
    int64 tensors of 1-based ids; ``split_sizes`` = [ntrain, nval, ntest]; ``vocab_mapping``
    {single byte: id}. Split indices are 1 (train), 2 (val), 3 (test), as in the original."""
    vocab_mapping: dict
    x_batches: list
    y_batches: list
    split_sizes: list
    batch_ix: list = dataclasses.field(default_factory=lambda: [0, 0, 0])

    @property
    def vocab_size(self):
        return len(self.vocab_mapping)

    @property
    def ntrain(self):
        return self.split_sizes[0]

    def vocab_bytes(self):
        """The tokens in id order: a list of single bytes."""
        return sorted(self.vocab_mapping, key=self.vocab_mapping.get)

    def reset_batch_pointer(self, split_index, batch_index=0):
        self.batch_ix[split_index - 1] = batch_index

    def next_batch(self, split_index):
        """The next (x, y) of a split, cycling back to its first batch after its last."""
        k = split_index - 1
        if self.split_sizes[k] == 0:
            raise TorchRNNError(f"no batches in the {SPLIT_NAMES[k]} split")
        self.batch_ix[k] += 1
        if self.batch_ix[k] > self.split_sizes[k]:
            self.batch_ix[k] = 1
        ix = self.batch_ix[k] - 1 + sum(self.split_sizes[:k])
        return self.x_batches[ix], self.y_batches[ix]


def split_fractions(train_frac, val_frac):
    """train.lua's ``{train_frac, val_frac, test_frac}`` with ``test_frac = max(0, 1 - both)``;
    each must lie in [0, 1] and together they may not exceed 1."""
    for name, value in (("train", train_frac), ("val", val_frac)):
        if not 0 <= value <= 1:
            raise TorchRNNError(f"bad split fraction {value} for {name}, not between 0 and 1 "
                                f"(-{name}_frac)")
    if train_frac + val_frac > 1 + FRACTION_SLACK:
        raise TorchRNNError(f"-train_frac {train_frac} and -val_frac {val_frac} add up to "
                            f"{train_frac + val_frac:.6g}, more than 1")
    return [train_frac, val_frac, max(0.0, 1 - (train_frac + val_frac))]


def load_data_dir(data_dir, batch_size, seq_length, fractions, say=lambda text: None):
    """A :class:`CharSplitLoader` for ``data_dir`` (preprocessing input.txt first when
    vocab.t7/data.t7 are missing or stale), printing the original's lines through ``say``."""
    input_file, _, _ = data_paths(data_dir)
    unit = batch_size * seq_length
    if os.path.isfile(input_file):                      # checked before anything is written
        _check_length(os.path.getsize(input_file), batch_size, seq_length, fractions,
                      input_file)
    ids, vocab = prepare_data_dir(data_dir, say)
    say("loading data files...")
    length = ids.numel()
    _check_length(length, batch_size, seq_length, fractions, input_file)
    if length % unit != 0:
        say("cutting off end of data so that the batches/sequences divide evenly")
        ids = ids[:unit * (length // unit)]
    ids = ids.long()
    say("reshaping tensor...")
    ydata = torch.cat([ids[1:], ids[:1]])                       # shifted, wraps around
    x_batches = list(ids.view(batch_size, -1).split(seq_length, 1))   # [(B, T)]
    y_batches = list(ydata.view(batch_size, -1).split(seq_length, 1))
    nbatches = len(x_batches)
    if nbatches < FEW_BATCHES:
        say("WARNING: less than 50 batches in the data in total? Looks like very small "
            "dataset. You probably want to use smaller batch_size and/or seq_length.")
    sizes = _split_sizes(nbatches, fractions, input_file)
    say("data load done. Number of data batches in train: %d, val: %d, test: %d" % tuple(sizes))
    return CharSplitLoader(vocab, x_batches, y_batches, sizes)


def _check_length(length, batch_size, seq_length, fractions, input_file):
    """Refuse data shorter than one batch, or too short for a train and a val split."""
    unit = batch_size * seq_length
    if 0 < length < unit:
        raise TorchRNNError(f"{input_file}: {length} bytes is less than one batch: "
                            f"-batch_size {batch_size} x -seq_length {seq_length} needs "
                            f"{unit} bytes; use smaller values")
    if length:
        _split_sizes(length // unit, fractions, input_file)


def _split_sizes(nbatches, fractions, input_file):
    """[ntrain, nval, ntest] as the loader divides ``nbatches``; a split that train.lua
    needs and would get no batches is refused (char-rnn would divide by zero)."""
    ntrain = math.floor(nbatches * fractions[0])
    if fractions[2] == 0:
        nval, ntest = nbatches - ntrain, 0
    else:
        nval = math.floor(nbatches * fractions[1])
        ntest = nbatches - nval - ntrain
    for name, count in (("train", ntrain), ("val", nval)):
        if count == 0:
            raise TorchRNNError(f"{input_file}: no {name} batches: {nbatches} batches with "
                                f"-train_frac {fractions[0]} -val_frac {fractions[1]} leave "
                                f"none for {name} (char-rnn would report a NaN loss); use a "
                                f"larger -{name}_frac or smaller -batch_size/-seq_length")
    return [ntrain, nval, ntest]


def data_paths(data_dir):
    """(input.txt, vocab.t7, data.t7) inside ``data_dir``."""
    return tuple(os.path.join(data_dir, name) for name in (INPUT_NAME, VOCAB_NAME, DATA_NAME))


def prepare_data_dir(data_dir, say=lambda text: None):
    """``(ids, vocab_mapping)``: ids a uint8 tensor of 1-based ids, read from data.t7, which
    is (re)made from input.txt first when the loader would remake it."""
    input_file, vocab_file, tensor_file = data_paths(data_dir)
    if not os.path.isdir(data_dir):
        what = "does not exist" if not os.path.exists(data_dir) else "is not a directory"
        raise TorchRNNError(f"{data_dir}: -data_dir {what} (expected a folder holding "
                            f"{INPUT_NAME})")
    check_input_file(input_file, "input text file")
    check_distinct(input_file=input_file, vocab_file=vocab_file, data_file=tensor_file)
    found = [_existing(path) for path in (vocab_file, tensor_file)]
    if not any(found):
        say("vocab.t7 and data.t7 do not exist. Running preprocessing...")
        run_prepro = True
    else:
        newest_input = int(os.stat(input_file).st_mtime)
        run_prepro = not all(found) or any(newest_input > int(os.stat(p).st_mtime)
                                           for p in (vocab_file, tensor_file))
        if run_prepro:
            say("vocab.t7 or data.t7 detected as stale. Re-running preprocessing...")
    if run_prepro:
        say(f"one-time setup: preprocessing input text file {input_file}...")
        return text_to_tensor(input_file, vocab_file, tensor_file, say)
    return _read_prepared(input_file, vocab_file, tensor_file)


def _existing(path):
    """Whether ``path`` exists; one that is not a regular file (a directory, a FIFO, a
    device, a dangling symlink) is refused, since the loader would read or replace it."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise TorchRNNError(f"{path}: a symlink to nothing; remove it or point it at a "
                                f"file") from None
        return False
    except OSError as err:
        raise TorchRNNError(f"{path}: {err.strerror or err}") from None
    if not stat.S_ISREG(st.st_mode):
        raise TorchRNNError(f"{path}: expected a regular file (char-rnn's preprocessed "
                            f"data), found {file_kind(st.st_mode)}")
    return True


def text_to_tensor(input_file, vocab_file, tensor_file, say=lambda text: None):
    """Write vocab.t7 and data.t7 for ``input_file`` (both or neither); returns
    ``(ids, vocab_mapping)`` as :func:`prepare_data_dir`."""
    say("loading text file...")
    try:
        raw = np.fromfile(input_file, dtype=np.uint8)
    except OSError as err:
        raise TorchRNNError(f"{input_file}: cannot read input text file: "
                            f"{err.strerror or err}") from None
    say("creating vocabulary mapping...")
    vocab, lut = vocab_of(raw, input_file)
    say("putting data into tensor...")
    ids = torch.from_numpy(lut[raw])
    with atomic_outputs() as files:                     # both appear together, or neither
        say(f"saving {vocab_file}")
        files.open(vocab_file, "wb", "vocab file").write(dumps_t7(vocab))
        say(f"saving {tensor_file}")
        files.open(tensor_file, "wb", "data file").write(dumps_t7(ids))
    return ids, vocab


def vocab_of(raw, input_file):
    """``(vocab_mapping, lut)`` of the bytes ``raw`` (uint8 array): ids 1..V by byte value,
    and a 256-entry uint8 table from byte to id (0 for absent bytes)."""
    present = np.flatnonzero(np.bincount(raw, minlength=256))
    if present.size == 0:
        raise TorchRNNError(f"{input_file}: the input text file is empty")
    if present.size > MAX_VOCAB:
        raise TorchRNNError(f"{input_file}: holds all 256 byte values; char-rnn's data.t7 "
                            f"is a ByteTensor of ids 1..255 and cannot number 256 tokens")
    lut = np.zeros(256, dtype=np.uint8)
    lut[present] = np.arange(1, present.size + 1)
    return {bytes([int(b)]): int(lut[b]) for b in present}, lut


def _read_prepared(input_file, vocab_file, tensor_file):
    """Read vocab.t7 and data.t7 and check them against input.txt."""
    vocab = _read_vocab(vocab_file)
    ids = read_t7(tensor_file)
    if not isinstance(ids, torch.Tensor) or ids.dtype != torch.uint8 or ids.dim() != 1:
        found = f"a {ids.dtype} tensor of shape {tuple(ids.shape)}" \
            if isinstance(ids, torch.Tensor) else f"a {type(ids).__name__}"
        raise TorchRNNError(f"{tensor_file}: expected a 1-D torch.ByteTensor of ids (what "
                            f"char-rnn's loader saves), found {found}")
    raw = np.fromfile(input_file, dtype=np.uint8)
    lut = np.zeros(256, dtype=np.int64)
    for char, index in vocab.items():
        lut[char[0]] = index
    redo = f"; delete {vocab_file} and {tensor_file} to remake them from {input_file}"
    if raw.size != ids.numel():
        raise TorchRNNError(f"{tensor_file}: holds {ids.numel()} ids but {input_file} has "
                            f"{raw.size} bytes: it was made from another input{redo}")
    mine = lut[raw]
    if raw.size and mine.min() == 0:
        byte = int(raw[np.argmax(mine == 0)])
        raise TorchRNNError(f"{vocab_file}: has no id for the byte 0x{byte:02x} of "
                            f"{input_file}: it was made from another input{redo}")
    differ = np.flatnonzero(mine != ids.numpy())
    if differ.size:
        raise TorchRNNError(f"{tensor_file}: differs from {input_file} at byte offset "
                            f"{int(differ[0])}: it was made from another input{redo}")
    return ids, vocab


def _read_vocab(vocab_file):
    """vocab.t7 as {single byte: id}, ids 1..V each once; anything else in one line."""
    table = read_t7(vocab_file)
    if not isinstance(table, dict) or not table:
        raise TorchRNNError(f"{vocab_file}: expected a table of characters to ids (char-rnn's "
                            f"vocab.t7), found {type(table).__name__ if table else 'nothing'}")
    vocab = {}
    for key, index in table.items():
        char = key.encode("utf-8", "surrogateescape") if isinstance(key, str) else None
        if char is None or len(char) != 1 or isinstance(index, bool) \
                or not isinstance(index, (int, float)) \
                or not 1 <= index <= min(len(table), MAX_VOCAB) or index != int(index):
            raise TorchRNNError(f"{vocab_file}: expected single bytes mapped to ids "
                                f"1..{len(table)}, found {key!r} -> {index!r}")
        vocab[char] = int(index)
    if len(set(vocab.values())) != len(vocab):
        raise TorchRNNError(f"{vocab_file}: two bytes share one id")
    return vocab
