"""cnnlab.data: the IDX reader, the embedded digits split, ArrayDataset, DataLoader, transforms,
and image folders (PNGs made with Pillow). Downloads and the lookup order: test_download.py.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.data import (
    ArrayDataset,
    DataLoader,
    load_dataset,
    load_image_folder,
    read_idx,
    read_image,
)
from cnnlab.data import transforms as T
from cnnlab.data.datasets import _hash_order, stratified_test_indices

# ---------------------------------------------------------------------------- IDX files

_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
          np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX encoding written independently of cnnlab: struct header + big-endian values."""
    header = struct.pack(">BBBB", 0, 0, _CODES[array.dtype], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path: Path, data: bytes, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32,
                                   np.float64])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, dtype, gz):
    array = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    path = write(tmp_path / ("x.gz" if gz else "x"), idx_bytes(array), gz)
    result = read_idx(path)
    assert result.dtype == np.dtype(dtype) and result.dtype.isnative
    assert result.shape == (2, 3, 4) and result.flags.writeable
    np.testing.assert_array_equal(result, array)


def test_read_idx_recognises_gzip_by_content_not_name(tmp_path):
    labels = np.array([3, 1, 4, 1, 5], np.uint8)
    path = write(tmp_path / "labels-idx1-ubyte", idx_bytes(labels), gz=True)
    np.testing.assert_array_equal(read_idx(str(path)), labels)


def test_read_idx_truncated_file_says_what_was_expected(tmp_path):
    data = idx_bytes(np.zeros((10000, 28, 28), np.uint8))[:1000]
    path = write(tmp_path / "t10k-images-idx3-ubyte", data)
    with pytest.raises(ValueError) as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message
    assert "expected 7,840,016 bytes for 10,000×28×28 uint8 values, found 1,000" in message
    assert "truncated" in message


def test_read_idx_oversized_file(tmp_path):
    path = write(tmp_path / "x", idx_bytes(np.zeros(5, np.uint8)) + b"\x00\x01", gz=True)
    with pytest.raises(ValueError, match=r"expected 13 bytes for 5 uint8 values, found 15 "
                                         r"\(the file is longer than its header says\)"):
        read_idx(path)


def test_read_idx_foreign_file(tmp_path):
    path = write(tmp_path / "picture.png", b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(ValueError, match=r"picture.png is not an IDX file: it starts with "
                                         r"bytes 89 50 4e 47"):
        read_idx(path)


@pytest.mark.parametrize("data, match", [
    (bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 0]), "not an IDX file"),           # unknown type code
    (bytes([0, 1, 0x08, 1, 0, 0, 0, 1, 0]), "not an IDX file"),           # magic not 00 00
    (bytes([0, 0, 0x08]), "3 bytes long"),                                # shorter than magic
    (bytes([0, 0, 0x08, 3, 0, 0, 0, 1]), "needs 16 bytes, found 8"),      # header cut short
])
def test_read_idx_bad_headers(tmp_path, data, match):
    with pytest.raises(ValueError, match=match):
        read_idx(write(tmp_path / "bad", data))


def test_read_idx_corrupt_gzip_and_missing_file(tmp_path):
    packed = gzip.compress(idx_bytes(np.arange(1000, dtype=np.int32)))
    path = write(tmp_path / "cut.gz", packed[: len(packed) // 2])
    with pytest.raises(ValueError, match=r"cut.gz: the gzip data is corrupt or truncated"):
        read_idx(path)
    with pytest.raises(FileNotFoundError, match="IDX file not found"):
        read_idx(tmp_path / "nothing-here")


# ---------------------------------------------------------------------------- digits

# the MNIST test set's digit counts, and how many of each the fixed split holds out
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
DIGITS_TEST_COUNTS = [196, 227, 206, 202, 196, 178, 192, 206, 195, 202]


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_digits_split_sizes_types_and_range(digits):
    train, test = digits
    assert (len(train), len(test)) == (8000, 2000)
    for ds in digits:
        assert ds.images.shape[1:] == (1, 28, 28) and ds.images.dtype == np.float32
        assert ds.labels.dtype == np.int64 and ds.name == "digits"
        assert ds.classes == [str(d) for d in range(10)]
        assert ds.images.min() == 0.0 and ds.images.max() == 1.0
    # MNIST strokes cover roughly a fifth of each image (mean intensity about 0.13)
    assert 0.10 < float(train.images.mean()) < 0.16


def test_digits_split_is_stratified_disjoint_and_complete(digits):
    train, test = digits
    assert np.bincount(test.labels).tolist() == DIGITS_TEST_COUNTS
    assert (np.bincount(train.labels) + np.bincount(test.labels)).tolist() == MNIST_TEST_COUNTS
    rows = {img.tobytes() for ds in digits for img in (ds.images * 255).astype(np.uint8)}
    assert len(rows) == 10000          # every image once: no image is in both splits


def test_digits_split_is_the_same_everywhere(digits):
    """Fingerprints of the fixed split: any change to the split rule changes them."""
    train, test = load_dataset("digits")
    np.testing.assert_array_equal(train.images, digits[0].images)
    assert hashlib.md5(test.labels.tobytes()).hexdigest() == hashlib.md5(
        digits[1].labels.tobytes()).hexdigest()
    pixels = np.rint(test.images * 255).astype(np.uint8)
    assert hashlib.md5(pixels.tobytes()).hexdigest() == DIGITS_TEST_MD5


DIGITS_TEST_MD5 = "ddc250afdd31da578af6b857ef032e88"


def test_hash_order_is_splitmix64():
    # SplitMix64's first outputs from state 0 (published test values): state = k * golden gamma
    assert int(_hash_order(1, 1)[0]) == 0xE220A8397B1DCDAF
    assert int(_hash_order(1, 2)[0]) == 0x6E789E6AA1B965F4
    keys = _hash_order(1000, 7)
    assert keys.dtype == np.uint64 and len(np.unique(keys)) == 1000


def test_stratified_test_indices_keeps_each_share():
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    test = stratified_test_indices(labels, 25, seed=3)
    assert len(test) == 25 and np.all(np.diff(test) > 0)
    counts = np.bincount(labels[test]).tolist()
    assert counts == [13, 7, 5] or counts == [12, 8, 5]      # 12.5, 7.5, 5 by largest remainder
    assert not np.array_equal(test, stratified_test_indices(labels, 25, seed=4))
    np.testing.assert_array_equal(test, stratified_test_indices(labels, 25, seed=3))


# ---------------------------------------------------------------------------- ArrayDataset


def test_array_dataset_scales_uint8_and_indexes():
    images = np.full((3, 2, 4, 4), 255, np.uint8)
    ds = ArrayDataset(images, [0, 2, 1], ["a", "b", "c"], name="toy")
    assert ds.images.dtype == np.float32 and ds.images.max() == 1.0
    image, label = ds[1]
    assert image.shape == (2, 4, 4) and label == 2 and isinstance(label, int)
    assert ds[-1][1] == 1 and len(ds) == 3 and ds.shape == (2, 4, 4)
    assert repr(ds) == "ArrayDataset('toy', 3 images 2×4×4, 3 classes)"
    grey = ArrayDataset(np.zeros((2, 5, 5), np.float64), [0, 0], ["x"])
    assert grey.images.shape == (2, 1, 5, 5) and grey.images.dtype == np.float32


@pytest.mark.parametrize("images, labels, classes, error, match", [
    (np.zeros((2, 4)), [0, 1], ["a", "b"], ValueError, r"shape \(N, C, H, W\)"),
    (np.zeros((2, 1, 4, 4)), [0], ["a"], ValueError, "2 integers"),
    (np.zeros((2, 1, 4, 4)), [0.0, 1.0], ["a", "b"], ValueError, "integers"),
    (np.zeros((2, 1, 4, 4)), [0, 2], ["a", "b"], ValueError, r"\[0, 2\)"),
    (np.zeros((2, 1, 4, 4), np.int32), [0, 1], ["a", "b"], TypeError, "uint8 or floating"),
])
def test_array_dataset_rejects_bad_input(images, labels, classes, error, match):
    with pytest.raises(error, match=match):
        ArrayDataset(images, labels, classes)


def test_array_dataset_index_errors():
    ds = ArrayDataset(np.zeros((2, 1, 2, 2), np.float32), [0, 1], ["a", "b"])
    with pytest.raises(IndexError, match="out of range for 2 images"):
        ds[2]
    with pytest.raises(TypeError, match="indices must be ints"):
        ds["0"]


def test_load_dataset_unknown_name_lists_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'cifar10'; expected one of 'digits', "
                                         "'mnist', 'fashion-mnist' or an existing folder"):
        load_dataset("cifar10")
    (tmp_path / "file.txt").write_text("hi")
    with pytest.raises(ValueError, match="is a file"):
        load_dataset(tmp_path / "file.txt")
    with pytest.raises(ValueError, match="size applies to image folders only"):
        load_dataset("digits", size=32)
    with pytest.raises(ValueError, match="takes no root"):
        load_dataset("DIGITS", root=tmp_path)
    with pytest.raises(TypeError, match="a dataset name or a folder path"):
        load_dataset(3)
    with pytest.raises(ValueError, match="root applies to mnist and fashion-mnist"):
        load_dataset(tmp_path, root=tmp_path)


# ---------------------------------------------------------------------------- DataLoader


def numbered(n: int = 10, size: int = 2) -> ArrayDataset:
    """Image i is filled with the value i, and its label is i: batches show which images."""
    images = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None, None],
                             (n, 1, size, size))
    return ArrayDataset(images, np.arange(n), [str(i) for i in range(n)])


@pytest.mark.parametrize("n, batch, drop_last, sizes", [
    (10, 4, False, [4, 4, 2]), (10, 4, True, [4, 4]), (8, 4, True, [4, 4]),
    (3, 5, False, [3]), (3, 5, True, []),
])
def test_loader_batches_len_and_drop_last(n, batch, drop_last, sizes):
    loader = DataLoader(numbered(n), batch_size=batch, drop_last=drop_last)
    assert len(loader) == len(sizes)
    batches = list(loader)
    assert [len(y) for _, y in batches] == sizes
    for x, y in batches:
        assert x.dtype == np.float32 and x.shape[1:] == (1, 2, 2) and y.dtype == np.int64
        np.testing.assert_array_equal(x[:, 0, 0, 0], y)         # image and label stay paired


def test_loader_without_shuffle_keeps_the_dataset_order():
    ys = np.concatenate([y for _, y in DataLoader(numbered(10), batch_size=3)])
    np.testing.assert_array_equal(ys, np.arange(10))


def test_loader_shuffle_visits_every_image_once_per_epoch():
    loader = DataLoader(numbered(103), batch_size=10, shuffle=True, seed=5)
    for epoch in range(3):
        loader.set_epoch(epoch)
        ys = np.concatenate([y for _, y in loader])
        assert not np.array_equal(ys, np.arange(103))
        np.testing.assert_array_equal(np.sort(ys), np.arange(103))


def epoch_labels(loader: DataLoader) -> list[list[int]]:
    return [y.tolist() for _, y in loader]


def test_loader_shuffle_is_a_function_of_seed_and_epoch():
    a = DataLoader(numbered(50), batch_size=8, shuffle=True, seed=1)
    b = DataLoader(numbered(50), batch_size=8, shuffle=True, seed=1)
    first, second = epoch_labels(a), epoch_labels(a)          # iterations advance the epoch
    assert first != second
    b.set_epoch(1)
    assert epoch_labels(b) == second                          # resume at epoch 1
    b.set_epoch(0)
    assert epoch_labels(b) == first
    assert a.epoch == 2 and b.epoch == 1
    expected = np.random.default_rng((1, 0)).permutation(50)
    np.testing.assert_array_equal(np.concatenate(first), expected)
    other_seed = DataLoader(numbered(50), batch_size=8, shuffle=True, seed=2)
    assert epoch_labels(other_seed) != first


def test_loader_transform_gets_a_reproducible_rng_per_batch():
    seen = []

    def record(x, rng):
        seen.append(int(rng.integers(1 << 30)))
        return x + 1

    loader = DataLoader(numbered(6), batch_size=4, seed=3, transform=record)
    loader.set_epoch(2)
    x, _ = next(iter(loader))
    assert x[0, 0, 0, 0] == 1.0
    list(DataLoader(numbered(6), batch_size=4, seed=3, transform=record))
    expected = [int(np.random.default_rng(np.random.SeedSequence((3, 2), spawn_key=(0,)))
                    .integers(1 << 30))]
    assert seen[0] == expected[0]
    assert len(set(seen[1:])) == 2 and seen[0] not in seen[1:]   # epoch 0, batches 0 and 1


def test_loader_augmentation_repeats_for_a_resumed_epoch():
    train = numbered(20, size=6)
    augment = T.Compose([T.RandomCrop(6, padding=2), T.RandomHorizontalFlip()])
    a = DataLoader(train, batch_size=8, shuffle=True, seed=9, transform=augment)
    b = DataLoader(train, batch_size=8, shuffle=True, seed=9, transform=augment)
    a.set_epoch(4)
    b.set_epoch(4)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"batch_size": 0}, ValueError, "batch_size must be a positive int, received 0"),
    ({"seed": -1}, ValueError, "seed must be a non-negative int"),
    ({"transform": "flip"}, TypeError, "transform must be callable"),
])
def test_loader_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        DataLoader(numbered(4), **kwargs)


def test_loader_rejects_non_datasets_and_bad_epochs():
    with pytest.raises(TypeError, match="expects an ArrayDataset"):
        DataLoader([1, 2, 3])
    with pytest.raises(ValueError, match="epoch must be a non-negative int"):
        DataLoader(numbered(4)).set_epoch(-1)


# ---------------------------------------------------------------------------- transforms


def test_random_crop_keeps_the_shape_and_cuts_windows_of_the_padded_image():
    rng = np.random.default_rng(0)
    x = rng.random((16, 2, 5, 7)).astype(np.float32)
    before = x.copy()
    out = T.RandomCrop((5, 7), padding=2)(x, np.random.default_rng(1))
    assert out.shape == x.shape and out.dtype == np.float32
    np.testing.assert_array_equal(x, before)                  # input untouched
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    offsets = set()
    for b in range(16):
        hits = [(t, s) for t in range(5) for s in range(5)
                if np.array_equal(padded[b, :, t:t + 5, s:s + 7], out[b])]
        assert hits, f"image {b} is not a window of its padded self"
        offsets.add(hits[0])
    assert len(offsets) > 4                                   # images get their own offsets
    again = T.RandomCrop((5, 7), padding=2)(x, np.random.default_rng(1))
    np.testing.assert_array_equal(out, again)


def test_random_crop_smaller_window_and_identity():
    x = np.arange(2 * 16, dtype=np.float32).reshape(2, 1, 4, 4)
    np.testing.assert_array_equal(T.RandomCrop(4)(x, np.random.default_rng(0)), x)
    out = T.RandomCrop(2)(x, np.random.default_rng(0))
    assert out.shape == (2, 1, 2, 2)
    with pytest.raises(ValueError, match=r"cannot cut 6×6 from 4×4 images padded by 0"):
        T.RandomCrop(6)(x, np.random.default_rng(0))
    with pytest.raises(ValueError, match="padding must be a non-negative int"):
        T.RandomCrop(4, padding=-1)


def test_horizontal_flip_flips_about_half_reproducibly():
    x = np.random.default_rng(0).random((1000, 1, 3, 4)).astype(np.float32)
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=1.0)(x), x[..., ::-1])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=0.0)(x), x)
    out = T.RandomHorizontalFlip()(x, np.random.default_rng(5))
    flipped = np.all(out == x[..., ::-1], axis=(1, 2, 3))
    kept = np.all(out == x, axis=(1, 2, 3))
    assert np.all(flipped ^ kept) and 400 < flipped.sum() < 600
    np.testing.assert_array_equal(out, T.RandomHorizontalFlip()(x, np.random.default_rng(5)))
    with pytest.raises(ValueError, match="probability between 0 and 1"):
        T.RandomHorizontalFlip(p=1.5)


def test_normalize_per_channel_and_errors():
    x = np.ones((2, 3, 2, 2), np.float32)
    out = T.Normalize([0.0, 0.5, 1.0], [1.0, 0.5, 2.0])(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, :, 0, 0], [1.0, 1.0, 0.0])
    np.testing.assert_allclose(T.Normalize(0.5, 0.25)(x), np.full(x.shape, 2.0))
    with pytest.raises(ValueError, match="mean has 2 values for a batch with 3 channels"):
        T.Normalize([0.1, 0.2], 1.0)(x)
    with pytest.raises(ValueError, match="std must be positive"):
        T.Normalize(0.0, 0.0)
    with pytest.raises(ValueError, match=r"batch of shape \(B, C, H, W\)"):
        T.Normalize(0.0, 1.0)(np.ones((3, 2, 2)))


def test_compose_applies_in_order_and_repeats_with_the_same_seed():
    x = np.random.default_rng(0).random((8, 1, 6, 6)).astype(np.float32)
    t = T.Compose([T.RandomCrop(6, padding=1), T.RandomHorizontalFlip(), T.Normalize(0.5, 0.5)])
    a, b = t(x, np.random.default_rng(7)), t(x, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert a.min() >= -1.0 and not np.array_equal(a, t(x, np.random.default_rng(8)))
    assert "RandomCrop(size=(6, 6), padding=1)" in repr(t)
    with pytest.raises(TypeError, match="Compose expects callables"):
        T.Compose([3])


# ---------------------------------------------------------------------------- image folders


def make_folder(root: Path, classes: dict[str, list], size=(6, 8), mode="L") -> Path:
    """``classes``: name -> list of pixel values; each value becomes one flat image."""
    for name, values in classes.items():
        (root / name).mkdir(parents=True)
        for i, value in enumerate(values):
            Image.new(mode, (size[1], size[0]), value).save(root / name / f"{i:02d}.png")
    return root


def test_image_folder_classes_split_size_and_values(tmp_path):
    root = make_folder(tmp_path / "pets", {"dog": [10, 20, 30, 40, 50], "cat": [0, 255, 0, 255,
                                                                                0]})
    Image.new("L", (12, 12), 99).save(root / "dog" / "big.png")        # resized to 6×8
    (root / "dog" / "notes.txt").write_text("not an image")           # skipped
    train, test = load_dataset(root)
    assert train.classes == ["cat", "dog"] and train.name == "pets"
    assert (len(train), len(test)) == (9, 2)
    assert train.images.shape[1:] == (1, 6, 8)
    assert np.bincount(test.labels).tolist() == [1, 1]                 # stratified
    values = sorted({round(float(v) * 255) for v in
                     np.concatenate([train.images, test.images])[:, 0, 0, 0]})
    assert values == [0, 10, 20, 30, 40, 50, 99, 255]
    again, _ = load_dataset(str(root))
    np.testing.assert_array_equal(again.images, train.images)
    other, _ = load_image_folder(root, seed=1, size=4)
    assert other.images.shape[1:] == (1, 4, 4)
    # load_dataset hands size, test_fraction and seed on to the folder reader
    same, _ = load_dataset(root, size=4, seed=1)
    np.testing.assert_array_equal(same.images, other.images)
    seeds = {tuple(load_dataset(root, size=4, seed=s)[1].images[:, 0, 0, 0]) for s in range(6)}
    assert len(seeds) > 1                                   # the seed picks the test images


def test_image_folder_colour_rule(tmp_path):
    grey_rgb = make_folder(tmp_path / "grey", {"a": [(5, 5, 5), (9, 9, 9)], "b": [(1, 1, 1)]},
                           mode="RGB")
    assert load_dataset(grey_rgb)[0].images.shape[1] == 1             # grey content: 1 channel
    mixed = make_folder(tmp_path / "mixed", {"a": [3, 4], "b": [7]})
    Image.new("RGB", (8, 6), (255, 0, 0)).save(mixed / "b" / "red.png")
    train, test = load_dataset(mixed)
    images = np.concatenate([train.images, test.images])
    assert images.shape[1] == 3                                       # any colour: all RGB
    red = images[np.all(images[:, :, 0, 0] == [1.0, 0.0, 0.0], axis=1)]
    assert len(red) == 1


def test_image_folder_with_train_and_test_subfolders(tmp_path):
    make_folder(tmp_path / "set" / "train", {"x": [1, 2, 3], "y": [4, 5]})
    make_folder(tmp_path / "set" / "test", {"x": [6], "y": [7]})
    train, test = load_dataset(tmp_path / "set")
    assert (len(train), len(test)) == (5, 2) and test.classes == ["x", "y"]
    np.testing.assert_allclose(test.images[:, 0, 0, 0] * 255, [6, 7], atol=1e-4)


def test_image_folder_errors_name_the_problem(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="has no class subfolders"):
        load_dataset(tmp_path / "empty")
    root = make_folder(tmp_path / "d", {"a": [1, 2], "b": []})
    with pytest.raises(ValueError, match=r"class folder .*b holds no images"):
        load_dataset(root)
    root = make_folder(tmp_path / "c", {"a": [1, 2], "b": [3]})
    (root / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ValueError, match=r"Cannot read the image .*broken.png"):
        load_dataset(root)
    one = make_folder(tmp_path / "one", {"a": [1]})
    with pytest.raises(ValueError, match="a train/test split needs at least 2"):
        load_dataset(one)
    with pytest.raises(ValueError, match="test_fraction must lie strictly between 0 and 1"):
        load_dataset(root, test_fraction=1.0)


def test_read_image_channels_size_inversion_and_transparency(tmp_path):
    drawing = Image.new("RGB", (20, 10), "white")
    drawing.paste((0, 0, 0), (5, 2, 15, 8))                            # a dark box on white
    drawing.save(tmp_path / "drawing.png")
    x = read_image(tmp_path / "drawing.png", channels=1, size=28, invert="auto")
    assert x.shape == (1, 28, 28) and x.dtype == np.float32
    assert x[0, 0, 0] == 0.0 and x[0, 14, 14] == 1.0                  # now light on dark
    assert read_image(tmp_path / "drawing.png").shape == (1, 10, 20)   # grey content
    colour = read_image(tmp_path / "drawing.png", channels=3, size=(4, 6), invert=True)
    assert colour.shape == (3, 4, 6)
    clear = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    clear.save(tmp_path / "clear.png")
    np.testing.assert_array_equal(read_image(tmp_path / "clear.png"), np.ones((1, 4, 4)))
    with pytest.raises(FileNotFoundError, match="Image file not found"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        read_image(tmp_path / "clear.png", channels=2)


# ---------------------------------------------------------------------------- defaults and subsets

def test_a_subset_keeps_the_name_unless_given_one():
    ds = ArrayDataset(np.arange(5, dtype=np.float32).reshape(5, 1, 1, 1), [0, 1, 0, 1, 0],
                      ["a", "b"], "toy")
    part = ds.subset([4, 0])
    assert part.name == "toy" and part.classes == ["a", "b"]
    np.testing.assert_array_equal(part.images.ravel(), [4, 0])
    assert ds.subset([1], name="one").name == "one"


def test_the_loader_s_defaults_are_64_per_batch_and_seed_0():
    ds = ArrayDataset(np.zeros((130, 1, 2, 2), np.float32), np.arange(130) % 2, ["a", "b"])
    assert [len(y) for _, y in DataLoader(ds)] == [64, 64, 2]
    shuffled = [y for _, y in DataLoader(ds, shuffle=True)]
    seeded = [y for _, y in DataLoader(ds, shuffle=True, seed=0)]
    for a, b in zip(shuffled, seeded, strict=True):
        np.testing.assert_array_equal(a, b)
    other = next(iter(DataLoader(ds, shuffle=True, seed=1)))[1]
    assert not np.array_equal(shuffled[0], other)


def test_random_split_and_subset_refusals_are_sentences():
    from cnnlab.data import Subset, random_split

    items = list(range(10))
    with pytest.raises(TypeError, match=r"^random_split takes generator or seed, not both\.$"):
        random_split(items, [5, 5], np.random.default_rng(0), seed=1)
    for seed in (-1, "3"):
        with pytest.raises(ValueError, match=rf"^random_split: seed must be a non-negative int, "
                                             rf"received {seed!r}\.$"):
            random_split(items, [5, 5], seed=seed)
    assert len(Subset(items, [])) == 0                                # [] is float64 to NumPy
    assert Subset(["only"], [-1])[0] == "only"                       # -1 counts from the end
    with pytest.raises(TypeError, match=r"^Subset indices must be a flat sequence of ints, "
                                        r"received dtype int64 with shape \(1, 2\)\.$"):
        Subset(items, [[0, 1]])


# ---------------------------------------------------------------------------- transforms' edges

def test_normalize_from_data_takes_each_channel_s_statistics():
    images = np.arange(16.0).reshape(2, 2, 2, 2)        # channel 0: 0-3, 8-11; 1: 4-7, 12-15
    normalize = T.Normalize.from_data(images)
    np.testing.assert_allclose(normalize.mean, [5.5, 9.5])
    np.testing.assert_allclose(normalize.std, [np.std([0, 1, 2, 3, 8, 9, 10, 11])] * 2)


def test_transform_refusals_name_the_transform():
    with pytest.raises(ValueError, match=r"^RandomHorizontalFlip: p must be a probability "
                                         r"between 0 and 1, received 2\.$"):
        T.RandomHorizontalFlip(p=2)
    with pytest.raises(ValueError, match=r"^RandomHorizontalFlip expects a batch of shape "
                                         r"\(B, C, H, W\), received shape \(4, 4\)\.$"):
        T.RandomHorizontalFlip()(np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"^RandomCrop: size must be a positive int or a pair "
                                         r"\(H, W\) of them, received \(0, 0\)\.$"):
        T.RandomCrop(0)
    for size in ((10, 2), (2, 10)):                     # too large in one direction only
        with pytest.raises(ValueError, match=rf"^RandomCrop: cannot cut {size[0]}×{size[1]} "
                                             rf"from 4×4 images padded by 0\.$"):
            T.RandomCrop(size)(np.zeros((1, 1, 4, 4)))


def test_image_folder_edges(tmp_path):
    make_folder(tmp_path / "set" / "train", {"x": [1]})
    make_folder(tmp_path / "set" / "test", {"x": [2], "w": [3], "z": [4]})
    with pytest.raises(ValueError, match=r"test has classes that .*train lacks: w, z\.$"):
        load_dataset(tmp_path / "set")
    with pytest.raises(FileNotFoundError, match=r"^Image folder not found: .*missing\.$"):
        load_image_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"more than the limit of 40 pixels"):
        load_image_folder(make_folder(tmp_path / "six", {"a": [1, 2]}), max_pixels=40)   # 6×8
    noted = make_folder(tmp_path / "noted", {"a": [1, 2], "b": [3, 4]})
    (noted / "README.txt").write_text("a file beside the class folders is not a class")
    assert load_image_folder(noted)[0].classes == ["a", "b"]
    two = make_folder(tmp_path / "two", {"a": [1, 2]})
    train, test = load_image_folder(two, test_fraction=0.9)
    assert (len(train), len(test)) == (1, 1)            # one image always stays for training


def test_rotation_about_a_given_center():
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    # 180° about the point (2, 2) (pixel centres at i + 0.5): pixel i goes to 3 - i
    y = T.RandomRotation((180, 180), center=(2, 2), fill=-1)(x, np.random.default_rng(0))
    expected = np.full((5, 5), -1.0)
    expected[:4, :4] = x[0, 0, 3::-1, 3::-1]
    np.testing.assert_array_equal(y[0, 0], expected)
    # the image's own centre (W/2, H/2) is the default fixed point
    about_middle = T.RandomAffine((90, 90), center=(2.5, 2.5))(x, np.random.default_rng(0))
    np.testing.assert_array_equal(about_middle, T.RandomAffine((90, 90))(x))
    with pytest.raises(ValueError, match=r"^RandomAffine: center must be a sequence of 2 "
                                         r"numbers, received 5\.$"):
        T.RandomAffine(0, center=5)


def test_each_image_gets_its_own_angle_and_shear():
    x = np.repeat(np.random.default_rng(0).random((1, 1, 9, 9)), 8, axis=0)   # 8 equal images
    for augment in (T.RandomRotation(90), T.RandomAffine(0, shear=(0, 0, -40, 40))):
        y = augment(x, np.random.default_rng(1))
        assert len({image.tobytes() for image in y}) > 1, augment
    sheared = T.RandomAffine(0, shear=(0, 0, 30, 30))(x, np.random.default_rng(1))
    assert not np.array_equal(sheared, x)                       # the y-shear range is used


def test_normalize_keeps_float64_and_makes_integers_float32():
    normalize = T.Normalize([0.5], [0.25])
    assert normalize(np.ones((1, 1, 2, 2), np.float64)).dtype == np.float64
    assert normalize(np.ones((1, 1, 2, 2), np.uint8)).dtype == np.float32
    assert normalize(np.ones((1, 1, 2, 2), np.float16)).dtype == np.float16
    with pytest.raises(ValueError, match=r"^Normalize expects a batch of shape"):
        normalize(np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"^RandomCrop expects a batch of shape"):
        T.RandomCrop(2)(np.ones((2, 2)))
    for fill in ([[1, 2]], float("nan")):
        with pytest.raises(ValueError, match=r"^fill must be a number or one number per "
                                             r"channel, received "):
            T.RandomAffine(0, fill=fill)


def test_each_image_gets_its_own_crop_column():
    x = np.repeat(np.arange(16.0).reshape(1, 1, 4, 4), 8, axis=0)       # 8 equal images
    crops = T.RandomCrop((8, 4), padding=2)(x, np.random.default_rng(0))   # top is always 0
    assert len({crop.tobytes() for crop in crops}) > 1


def test_rotation_and_scale_commute_about_the_centre():
    from cnnlab.data.affine import inverse_affine_matrix, warp_affine

    x = np.arange(25.0).reshape(1, 1, 5, 5)
    small = warp_affine(x, inverse_affine_matrix(0, (0, 0), 0.5, (0, 0))[None], fill=-1)
    turned = warp_affine(x, inverse_affine_matrix(90, (0, 0), 0.5, (0, 0))[None], fill=-1)
    np.testing.assert_array_equal(turned[0, 0], np.rot90(small[0, 0], k=-1))


def test_affine_y_shear_and_a_shift_after_rotation_by_hand():
    from cnnlab.data.affine import inverse_affine_matrix, warp_affine

    x = np.arange(25.0).reshape(1, 1, 5, 5)
    sheared = warp_affine(x, inverse_affine_matrix(0, (0, 0), 1, (0, 45))[None], fill=-1)[0, 0]
    expected = np.full((5, 5), -1.0)
    for r in range(5):
        for c in range(5):                  # a column right of the centre moves up (c - 2) rows
            if 0 <= r + c - 2 < 5:
                expected[r, c] = x[0, 0, r + c - 2, c]
    np.testing.assert_array_equal(sheared, expected)
    turned = np.rot90(x[0, 0], k=-1)                            # 90° clockwise
    down = warp_affine(x, inverse_affine_matrix(90, (0, 1), 1, (0, 0))[None], fill=-1)[0, 0]
    np.testing.assert_array_equal(down[1:], turned[:4])         # the shift comes after the turn
    right = warp_affine(x, inverse_affine_matrix(90, (1, 0), 1, (0, 0))[None], fill=-1)[0, 0]
    np.testing.assert_array_equal(right[:, 1:], turned[:, :4])
