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
import os

import h5py
import numpy as np
import torch

from .device import host_to_device
from .errors import TorchRNNError
from .fileio import check_input_file
from .preprocess import SPLITS


# HDF5 files start with this signature, at offset 0 or after a user block of 512, 1024,
# 2048, ... bytes.
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# How much larger than its stored (compressed) bytes a filtered dataset may be. deflate
# cannot expand data more than about 1032 times; 1100 leaves room for the chunk framing.
# Unfiltered datasets must fit in the file as they are.
MAX_EXPANSION = 1100
# The exception types h5py turns libhdf5's errors into (a damaged file gives any of them).
H5PY_ERRORS = (OSError, KeyError, RuntimeError, ValueError, TypeError)
# The filters HDF5 and h5py bring themselves; any other filter id would make libhdf5 look
# for a plugin (a shared library) to load, so such files are refused before reading.
_BUILTIN_FILTERS = {1: "deflate", 2: "shuffle", 3: "fletcher32", 4: "szip", 5: "nbit",
                    6: "scaleoffset", 32000: "lzf"}


def read_splits(input_h5):
    """The three 1-D token arrays of a preprocess HDF5 file, checked.

    The file is checked before anything is read from it: the HDF5 signature must be there,
    /train, /val and /test must be 1-D integer datasets stored in this file (no external
    links, external raw storage or virtual datasets; only HDF5's own filters), and the size
    each declares must be backed by the file: an unfiltered dataset's ``n * itemsize`` bytes
    must fit in the file, a filtered (compressed) one may expand at most ``MAX_EXPANSION``
    times its stored bytes. So a small file cannot make us allocate terabytes, and every
    malformed file is one TorchRNNError.
    """
    check_input_file(input_h5, "HDF5 data file")
    try:
        file_size = os.path.getsize(input_h5)
        _check_hdf5_signature(input_h5, file_size)
    except OSError as err:
        raise TorchRNNError(f"{input_h5}: cannot read HDF5 data file: "
                            f"{err.strerror or err}") from None
    try:
        with h5py.File(input_h5, "r") as f:
            missing = [name for name in SPLITS if name not in f]
            if missing:
                found = ", ".join(sorted(f.keys())) or "nothing"
                raise TorchRNNError(f"{input_h5}: expected datasets /train, /val and /test "
                                    f"(as preprocess writes), missing /{', /'.join(missing)}; "
                                    f"found {found}")
            datasets = {name: _checked_dataset(f, name, input_h5, file_size)
                        for name in SPLITS}
            splits = {}
            for name, dataset in datasets.items():
                data = dataset[()]
                if not isinstance(data, np.ndarray) or data.shape != dataset.shape:
                    raise TorchRNNError(f"{input_h5}: /{name} could not be read as an array "
                                        f"of {dataset.shape[0]} token ids")
                splits[name] = data
    except TorchRNNError:
        raise
    except MemoryError:
        raise TorchRNNError(f"{input_h5}: not enough memory to read the token ids") from None
    except H5PY_ERRORS as err:
        raise TorchRNNError(f"{input_h5}: not a readable HDF5 file ({_h5_message(err)})") \
            from None
    except Exception as err:  # noqa: BLE001 - last resort: a damaged file is never a crash
        raise TorchRNNError(f"{input_h5}: not a readable HDF5 file "
                            f"({type(err).__name__}: {_h5_message(err)})") from None
    return splits


def _check_hdf5_signature(path, file_size):
    """Refuse a file that has no HDF5 signature where HDF5 looks for one."""
    offset = 0
    with open(path, "rb") as f:
        while offset + len(HDF5_SIGNATURE) <= file_size:
            f.seek(offset)
            if f.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                return
            offset = 512 if offset == 0 else offset * 2
    what = "is empty" if file_size == 0 else "has no HDF5 signature"
    raise TorchRNNError(f"{path}: not an HDF5 file (it {what}); expected the .h5 file "
                        f"that preprocess writes")


def _checked_dataset(f, name, path, file_size):
    """``f[name]``, once it is known to be a 1-D integer dataset that the file can back."""
    link = f.get(name, getlink=True)
    if isinstance(link, h5py.ExternalLink):
        raise TorchRNNError(f"{path}: /{name} is a link to another file "
                            f"({link.filename}); the token ids must be in this file")
    dataset = f[name]
    if not isinstance(dataset, h5py.Dataset) or dataset.ndim != 1:
        found = (f"a {dataset.ndim}-D dataset of shape {dataset.shape}"
                 if isinstance(dataset, h5py.Dataset) else "a group")
        raise TorchRNNError(f"{path}: /{name} should be a 1-D dataset of token ids, "
                            f"found {found}")
    if dataset.dtype.kind not in "iu":
        raise TorchRNNError(f"{path}: /{name} should hold integer token ids, found dtype "
                            f"{dataset.dtype}")
    plist = dataset.id.get_create_plist()
    if dataset.is_virtual or plist.get_external_count() > 0:
        raise TorchRNNError(f"{path}: /{name} keeps its data in other files (a virtual or "
                            f"external dataset); the token ids must be in this file")
    filters = [plist.get_filter(k)[0] for k in range(plist.get_nfilters())]
    unknown = [code for code in filters if code not in _BUILTIN_FILTERS]
    if unknown:
        raise TorchRNNError(f"{path}: /{name} needs HDF5 filter {unknown[0]}, which is "
                            f"not built in (only {', '.join(sorted(_BUILTIN_FILTERS.values()))} "
                            f"are read)")
    declared = int(dataset.shape[0]) * dataset.dtype.itemsize
    if filters:
        stored = int(dataset.id.get_storage_size())
        if declared > stored * MAX_EXPANSION:
            raise TorchRNNError(
                f"{path}: /{name} declares {dataset.shape[0]} token ids ({declared} bytes) "
                f"but stores only {stored} compressed bytes: more than {MAX_EXPANSION} "
                f"times expansion, so the file is damaged (or not preprocess output)")
    elif declared > file_size:
        raise TorchRNNError(
            f"{path}: /{name} declares {dataset.shape[0]} token ids ({declared} bytes), "
            f"more than the whole file holds ({file_size} bytes): the file is damaged or "
            f"truncated")
    return dataset


def _h5_message(err):
    """h5py's message, on one line and not too long."""
    text = err.args[0] if len(err.args) == 1 and isinstance(err.args[0], str) else str(err)
    text = " ".join(text.split()) or type(err).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _narrow(data):
    """A split or batch as the contiguous array that crosses to a device: uint8 as it is,
    wider ids as int32 (token ids fit it; torch has few uint32 kernels)."""
    return np.ascontiguousarray(data if data.dtype == np.uint8 else data.astype(np.int32))


class DataLoader:
    """Minibatches of one HDF5 file's splits, in torch-rnn's order.

    ``vocab_size``: when given, token ids outside ``1..vocab_size`` are an error (the
    JSON and the HDF5 file do not belong together). ``log``: called with the original's
    "Not enough ... data" lines. ``token_map``: an array ``ids[data_id] == model_id``
    (vocab.model_token_map) that translates x and y into a model's vocabulary.
    """

    def __init__(self, input_h5, batch_size, seq_length, vocab_size=None, log=None,
                 token_map=None):
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
            if token_map is not None:
                data = token_map.astype(np.uint8 if token_map.max() <= 255 else np.uint32)[data]
            N_cur = N
            if N * T > num - 1:
                N_cur = (num - 1) // T
                if log is not None and N_cur >= 1:
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
        self.copy_to = None                 # the device batches stream to (stream_to)

    def next_batch(self, split, rows=None):
        """The next (x, y) of ``split``, each a LongTensor (N, T) of 1-based ids (on the
        loader's device after :meth:`to` or :meth:`stream_to`); ``rows`` (a slice) keeps
        only those streams (a process's share under torchrun)."""
        idx = self.split_idxs[split]
        rows = slice(None) if rows is None else rows
        x, y = self.x_splits[split][rows, idx], self.y_splits[split][rows, idx]
        if not isinstance(x, np.ndarray):
            x, y = x.long(), y.long()              # a slice on the device: nothing crosses
        elif self.copy_to is not None:             # crosses narrow, without waiting
            x, y = (host_to_device(torch.from_numpy(_narrow(t)), self.copy_to).long()
                    for t in (x, y))
        else:
            x, y = torch.from_numpy(x.astype(np.int64)), torch.from_numpy(y.astype(np.int64))
        self.split_idxs[split] = (idx + 1) % self.split_sizes[split]
        return x, y

    def to(self, device):
        """Keep every split on ``device`` in its stored width (uint8, else int32), so that a
        batch is a slice there and no host-to-device copy is made per step; returns self."""
        for splits in (self.x_splits, self.y_splits):
            for name, data in splits.items():
                splits[name] = torch.from_numpy(_narrow(data)).to(device)
        self.copy_to = None
        return self

    def stream_to(self, device):
        """Keep the splits on the host and hand each batch out on ``device``: it crosses
        in its stored width (uint8, else int32), from pinned memory on a GPU, queued
        without the host waiting; returns self."""
        self.copy_to = device
        return self

    def keep_on(self, device):
        """On a GPU, keep the data there when it fits easily (at most a quarter of the free
        memory and 1 GiB), so that a step copies nothing from the host; else stream each
        batch to it (:meth:`stream_to`). Elsewhere nothing."""
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            if self.nbytes() <= min(free // 4, 2 ** 30):
                self.to(device)
            else:
                self.stream_to(device)
        return self

    def nbytes(self):
        """Bytes the splits take once on a device (see :meth:`to`)."""
        def size(d):                    # a host array, or a split already on a device
            if isinstance(d, torch.Tensor):
                return d.numel() * d.element_size()
            return d.size * (1 if d.dtype == np.uint8 else 4)
        return sum(size(d) for splits in (self.x_splits, self.y_splits) for d in splits.values())

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
