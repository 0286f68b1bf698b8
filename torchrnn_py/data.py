"""torch-rnn's DataLoader (util/DataLoader.lua): fixed minibatches of contiguous streams.

For a split of ``num`` tokens, batch size N and sequence length T: if ``N*T > num - 1``
the batch size of that split drops to ``floor((num - 1) / T)``; ``extra = num mod N*T``
(``N*T`` when that is 0); ``x = data[0 : num-extra]`` and ``y = data[1 : num-extra+1]``
are cut into N rows, each row a contiguous stream through the split, then into batches
of T columns taken in order and cycled. Tokens stay 1-based, as in the file.

The splits stay in their file dtype (uint8/uint32) and batches are views; each batch is
converted to int64 when it is handed out, so a large dataset costs its own size in
memory, not eight times it.
"""
import h5py
import numpy as np
import torch

from .errors import TorchRNNError
from .fileio import check_input_file

SPLITS = ("train", "val", "test")


def read_splits(input_h5):
    """The three 1-D token arrays of a preprocess HDF5 file, checked."""
    check_input_file(input_h5, "HDF5 data file")
    try:
        with h5py.File(input_h5, "r") as f:
            missing = [name for name in SPLITS if name not in f]
            if missing:
                found = ", ".join(sorted(f.keys())) or "nothing"
                raise TorchRNNError(f"{input_h5}: expected datasets /train, /val and /test "
                                    f"(as preprocess writes), missing /{', /'.join(missing)}; "
                                    f"found {found}")
            splits = {}
            for name in SPLITS:
                dataset = f[name]
                if not isinstance(dataset, h5py.Dataset) or dataset.ndim != 1:
                    raise TorchRNNError(f"{input_h5}: /{name} should be a 1-D dataset of "
                                        f"token ids, found {dataset!r}")
                if dataset.dtype.kind not in "iu":
                    raise TorchRNNError(f"{input_h5}: /{name} should hold integer token "
                                        f"ids, found dtype {dataset.dtype}")
                splits[name] = dataset[()]
    except OSError as err:
        raise TorchRNNError(f"{input_h5}: not a readable HDF5 file ({err})") from None
    return splits


class DataLoader:
    """Minibatches of one HDF5 file's splits, in torch-rnn's order.

    ``vocab_size``: when given, token ids outside ``1..vocab_size`` are an error (the
    JSON and the HDF5 file do not belong together). ``log``: called with the original's
    "Not enough ... data" lines.
    """

    def __init__(self, input_h5, batch_size, seq_length, vocab_size=None, log=None):
        self.input_h5 = input_h5
        self.batch_size = N = int(batch_size)
        self.seq_length = T = int(seq_length)
        if N < 1 or T < 1:
            raise TorchRNNError(f"batch_size and seq_length must be positive, got {N} and {T}")
        self.x_splits, self.y_splits, self.split_sizes, self.batch_sizes = {}, {}, {}, {}
        for name, data in read_splits(input_h5).items():
            num = data.shape[0]
            if vocab_size is not None and num > 0:
                low, high = int(data.min()), int(data.max())
                if low < 1 or high > vocab_size:
                    raise TorchRNNError(
                        f"{input_h5}: /{name} holds token ids {low}..{high}, but the "
                        f"vocabulary has {vocab_size} tokens (ids 1..{vocab_size}): the "
                        f"JSON and the HDF5 file do not belong together")
            N_cur = N
            if N * T > num - 1:
                N_cur = (num - 1) // T
                if log is not None:
                    log(f"Not enough {name} data, reducing batch size to {N_cur}")
                if N_cur < 1:
                    raise TorchRNNError(
                        f"{input_h5}: /{name} has {num} tokens, too few for even one "
                        f"sequence of seq_length {T} (needs at least {T + 1})")
            extra = num % (N_cur * T) or N_cur * T
            x = data[:num - extra].reshape(N_cur, -1, T)        # (N, batches, T)
            y = data[1:num - extra + 1].reshape(N_cur, -1, T)   # (N, batches, T)
            self.x_splits[name], self.y_splits[name] = x, y
            self.split_sizes[name] = x.shape[1]
            self.batch_sizes[name] = x.shape[0]
        self.split_idxs = {name: 0 for name in SPLITS}

    def next_batch(self, split, rows=None):
        """The next (x, y) of ``split``, each a LongTensor (N, T) of 1-based ids;
        ``rows`` (a slice) keeps only those streams (a process's share under torchrun)."""
        idx = self.split_idxs[split]
        rows = slice(None) if rows is None else rows
        x = torch.from_numpy(self.x_splits[split][rows, idx].astype(np.int64))
        y = torch.from_numpy(self.y_splits[split][rows, idx].astype(np.int64))
        self.split_idxs[split] = (idx + 1) % self.split_sizes[split]
        return x, y

    def reset(self, split):
        """Start ``split`` again from its first batch."""
        self.split_idxs[split] = 0

    def state_dict(self):
        """Where each split's cursor stands (0-based batch index)."""
        return dict(self.split_idxs)

    def load_state_dict(self, state):
        for name, idx in state.items():
            if name not in self.split_sizes or not 0 <= int(idx) < self.split_sizes[name]:
                raise TorchRNNError(f"data cursor {name}={idx} does not fit {self.input_h5}")
            self.split_idxs[name] = int(idx)
