"""DataLoader = torch-rnn's util/DataLoader.lua (docs/compatibility.md, "data loader"), on
the real preprocessed data."""
import h5py
import numpy as np
import pytest
import torch

from conftest import GOLDEN
from torchrnn_py import data as data_mod
from torchrnn_py.data import DataLoader
from torchrnn_py.errors import TorchRNNError

H5 = GOLDEN / "shakespeare200k.h5"


@pytest.fixture(scope="module")
def splits():
    with h5py.File(H5, "r") as f:
        return {k: f[k][()] for k in ("train", "val", "test")}


def expected_batches(data, N, T):
    """docs/compatibility.md ("data loader"), written out: a list of (x, y) numpy batches,
    each (N, T)."""
    num = len(data)
    if N * T > num - 1:
        N = (num - 1) // T
    extra = num % (N * T)
    if extra == 0:
        extra = N * T
    xs = data[0:num - extra].astype(np.int64).reshape(N, -1, T)
    ys = data[1:num - extra + 1].astype(np.int64).reshape(N, -1, T)
    return [(xs[:, b, :], ys[:, b, :]) for b in range(xs.shape[1])], N


def test_split_sizes(splits):
    assert {k: len(v) for k, v in splits.items()} == {"train": 160000, "val": 20000,
                                                      "test": 20000}
    loader = DataLoader(H5, 20, 50)
    for name, data in splits.items():
        batches, N = expected_batches(data, 20, 50)
        assert loader.split_sizes[name] == len(batches)
        assert loader.batch_sizes[name] == N == 20
    # 160000 tokens: extra = 1000 (160000 is a multiple of 1000) -> 159 batches
    assert loader.split_sizes["train"] == 159
    assert loader.split_sizes["val"] == 19


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_every_batch_matches_spec(splits, split):
    loader = DataLoader(H5, 20, 50)
    batches, _ = expected_batches(splits[split], 20, 50)
    for b, (ex, ey) in enumerate(batches):
        x, y = loader.next_batch(split)
        assert x.dtype == torch.int64 and y.dtype == torch.int64
        assert x.shape == (20, 50)
        np.testing.assert_array_equal(x.numpy(), ex, err_msg=f"batch {b}")
        np.testing.assert_array_equal(y.numpy(), ey, err_msg=f"batch {b}")
    # cycles back to the first batch
    x, y = loader.next_batch(split)
    np.testing.assert_array_equal(x.numpy(), batches[0][0])
    np.testing.assert_array_equal(y.numpy(), batches[0][1])


def test_rows_are_contiguous_streams_and_y_is_x_shifted(splits):
    loader = DataLoader(H5, 20, 50)
    xs, ys = [], []
    for _ in range(loader.split_sizes["train"]):
        x, y = loader.next_batch("train")
        xs.append(x.numpy())
        ys.append(y.numpy())
    X = np.concatenate(xs, axis=1)          # (20, 159*50): each row a stream
    Y = np.concatenate(ys, axis=1)
    np.testing.assert_array_equal(X[:, 1:], Y[:, :-1])
    row_len = X.shape[1]
    data = splits["train"]
    for n in (0, 7, 19):
        np.testing.assert_array_equal(X[n], data[n * row_len:(n + 1) * row_len])
        np.testing.assert_array_equal(Y[n], data[n * row_len + 1:(n + 1) * row_len + 1])
    # tokens stay 1-based, as in the file
    assert X.min() >= 1


def test_splits_have_independent_cursors_and_reset(splits):
    loader = DataLoader(H5, 20, 50)
    first_train = loader.next_batch("train")[0]
    loader.next_batch("train")
    val0 = loader.next_batch("val")[0]
    ex = expected_batches(splits["val"], 20, 50)[0][0][0]
    np.testing.assert_array_equal(val0.numpy(), ex)
    loader.reset("train")
    assert torch.equal(loader.next_batch("train")[0], first_train)


def test_batch_size_reduction_logged_and_used(splits):
    lines = []
    loader = DataLoader(H5, 500, 50, log=lines.append)
    assert "Not enough val data, reducing batch size to 399" in lines
    assert "Not enough test data, reducing batch size to 399" in lines
    assert not any("train" in line for line in lines)      # 500*50 <= 159999
    assert loader.batch_sizes["val"] == 399
    assert loader.batch_sizes["train"] == 500
    x, y = loader.next_batch("val")
    assert x.shape == (399, 50)
    batches, N = expected_batches(splits["val"], 500, 50)
    assert N == 399 and loader.split_sizes["val"] == len(batches) == 1
    np.testing.assert_array_equal(x.numpy(), batches[0][0])
    np.testing.assert_array_equal(y.numpy(), batches[0][1])


def test_vocab_size_accepts_exact_vocabulary():
    loader = DataLoader(H5, 20, 50, vocab_size=62)
    assert loader.split_sizes["train"] == 159


# -- errors ---------------------------------------------------------------------------------

def _write_h5(path, **arrays):
    with h5py.File(path, "w") as f:
        for name, data in arrays.items():
            f.create_dataset(name, data=np.asarray(data, dtype=np.uint8))
    return path


def test_missing_file(tmp_path):
    path = tmp_path / "nope.h5"
    with pytest.raises(TorchRNNError, match="nope.h5"):
        DataLoader(path, 20, 50)


def test_not_hdf5(tmp_path):
    path = tmp_path / "garbage.h5"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(TorchRNNError, match="garbage.h5"):
        DataLoader(path, 20, 50)


def test_hdf5_without_val(tmp_path):
    path = _write_h5(tmp_path / "noval.h5", train=np.arange(1, 200) % 5 + 1,
                     test=np.arange(1, 200) % 5 + 1)
    with pytest.raises(TorchRNNError, match="noval.h5") as info:
        DataLoader(path, 2, 10)
    assert "val" in str(info.value)


def test_vocabulary_too_small(tmp_path):
    with pytest.raises(TorchRNNError) as info:
        DataLoader(H5, 20, 50, vocab_size=10)
    message = str(info.value)
    assert "shakespeare200k.h5" in message and "10" in message


def test_split_too_small_for_one_sequence(tmp_path):
    tokens = np.arange(300) % 5 + 1
    path = _write_h5(tmp_path / "tiny.h5", train=tokens, val=tokens[:30], test=tokens[:100])
    lines = []
    with pytest.raises(TorchRNNError, match="tiny.h5") as info:
        DataLoader(path, 2, 50, log=lines.append)
    assert "val" in str(info.value)


def test_split_exactly_one_sequence(tmp_path):
    tokens = np.arange(300) % 5 + 1
    path = _write_h5(tmp_path / "small.h5", train=tokens, val=tokens[:51], test=tokens[:101])
    lines = []
    loader = DataLoader(path, 2, 50, log=lines.append)
    assert lines == ["Not enough val data, reducing batch size to 1"]
    x, y = loader.next_batch("val")
    np.testing.assert_array_equal(x.numpy(), tokens[None, :50])
    np.testing.assert_array_equal(y.numpy(), tokens[None, 1:51])
    # test: 101 tokens, N*T = 100 = num - 1: no reduction, extra = 1 -> one batch
    assert loader.batch_sizes["test"] == 2 and loader.split_sizes["test"] == 1


def test_token_map_translates_x_and_y_after_the_range_check():
    plain = DataLoader(H5, 4, 10, vocab_size=62)
    token_map = np.arange(63, dtype=np.int64) + 100          # ids 1..62 -> 101..162
    mapped = DataLoader(H5, 4, 10, vocab_size=62, token_map=token_map)
    for _ in range(3):
        (x, y), (mx, my) = plain.next_batch("train"), mapped.next_batch("train")
        assert torch.equal(mx, x + 100) and torch.equal(my, y + 100)
    with pytest.raises(TorchRNNError, match="61 tokens"):       # checked before mapping
        DataLoader(H5, 4, 10, vocab_size=61, token_map=token_map)


@pytest.mark.parametrize("wide", [False, True])
def test_data_kept_on_a_device_gives_the_same_batches(tmp_path, splits, wide):
    """DataLoader.to (what train does on a GPU): batches are slices of the device copy, the
    same ids and dtype as the host path, for uint8 and for wider (uint32) data, with row
    shares and cursors."""
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        for name, data in splits.items():
            f.create_dataset(name, data=(data.astype(np.uint32) + 300) if wide else data)
    host = DataLoader(path, 7, 13)
    device = DataLoader(path, 7, 13).to(torch.device("cpu"))
    streamed = DataLoader(path, 7, 13).stream_to(torch.device("cpu"))
    both = DataLoader(path, 7, 13).to(torch.device("cpu")).stream_to(torch.device("cpu"))
    assert isinstance(device.x_splits["train"], torch.Tensor)
    assert device.x_splits["train"].dtype == (torch.int32 if wide else torch.uint8)
    assert isinstance(streamed.x_splits["train"], np.ndarray)          # stays on the host
    assert device.nbytes() == host.nbytes() == streamed.nbytes() > 0
    for split, rows in (("train", None), ("train", slice(2, 5)), ("val", None)):
        for _ in range(host.split_sizes[split] + 2):          # past the end: cycles
            (hx, hy) = host.next_batch(split, rows)
            for dx, dy in (device.next_batch(split, rows), streamed.next_batch(split, rows),
                           both.next_batch(split, rows)):
                assert dx.dtype == torch.int64 and torch.equal(hx, dx) and torch.equal(hy, dy)


def test_batches_stream_narrow_to_a_gpu_from_pinned_memory(tmp_path, splits, monkeypatch):
    """What crosses to a GPU per batch when the data stays on the host: the stored width
    (uint8 here, one byte an id), contiguous, through device.host_to_device (pinned, not
    waited for); the int64 ids are made on the device."""
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        for name, data in splits.items():
            f.create_dataset(name, data=data)
    crossed = []

    def fake_host_to_device(tensor, device):
        crossed.append((tensor.dtype, tensor.is_contiguous(), device))
        return tensor.to("cpu")
    monkeypatch.setattr(data_mod, "host_to_device", fake_host_to_device)
    gpu = torch.device("cuda", 0)
    streamed, host = DataLoader(path, 7, 13).stream_to(gpu), DataLoader(path, 7, 13)
    x, y = streamed.next_batch("train", slice(1, 4))
    assert crossed == [(torch.uint8, True, gpu)] * 2
    hx, hy = host.next_batch("train", slice(1, 4))
    assert x.dtype == torch.int64 and torch.equal(x, hx) and torch.equal(y, hy)


@pytest.mark.parametrize("free, kept", [(4 * 2 ** 20, True), (2 ** 12, False)])
def test_keep_on_a_gpu_keeps_what_fits_and_streams_the_rest(splits, tmp_path, monkeypatch,
                                                            free, kept):
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        for name, data in splits.items():
            f.create_dataset(name, data=data)
    loader = DataLoader(path, 7, 13)
    assert 2 ** 10 < loader.nbytes() <= 2 ** 20                       # a quarter of 4 MiB
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (free, 8 * 2 ** 30))
    moved = []
    monkeypatch.setattr(DataLoader, "to", lambda self, device: moved.append(device) or self)
    gpu = torch.device("cuda", 0)
    loader.keep_on(gpu)
    assert moved == ([gpu] if kept else []) and loader.copy_to == (None if kept else gpu)
    cpu = DataLoader(path, 7, 13).keep_on(torch.device("cpu"))
    assert cpu.copy_to is None and isinstance(cpu.x_splits["train"], np.ndarray)
