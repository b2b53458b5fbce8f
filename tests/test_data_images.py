"""Tests of the image sets with seeded stratified splits (mmsheaf.data.images)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmsheaf.data import (
    IMAGE_DATASETS,
    DatasetNotFoundError,
    ImageSplits,
    fill_data_root,
    load_images,
)
from mmsheaf.data.images import SPLIT_NAMES, load_digits_images, stratified_split_indices

# ------------------------------------------------------------------------------------------------------------
# Split logic (no files)
# ------------------------------------------------------------------------------------------------------------


def _labels(counts: list[int]) -> np.ndarray:
    return np.repeat(np.arange(len(counts)), counts)


@pytest.mark.parametrize(("val", "test"), [(0.1, 0.2), (0.15, 0.15), (0.3, 0.5)])
def test_split_indices_disjoint_cover_and_sized(val: float, test: float) -> None:
    labels = _labels([500] * 10)
    train, val_idx, test_idx = stratified_split_indices(labels, seed=3, val_fraction=val, test_fraction=test)
    assert len(test_idx) == round(test * 5000) and len(val_idx) == round(val * 5000)
    joined = np.concatenate([train, val_idx, test_idx])
    assert len(np.unique(joined)) == len(joined) == 5000  # disjoint and covering
    for part in (train, val_idx, test_idx):
        assert np.all(np.diff(part) > 0)


def test_split_indices_stratified_on_unbalanced_classes() -> None:
    labels = _labels([300, 120, 57, 23, 500])
    n = len(labels)
    parts = stratified_split_indices(labels, seed=0, val_fraction=0.1, test_fraction=0.2)
    for part, fraction in zip(parts, (0.7, 0.1, 0.2), strict=True):
        counts = np.bincount(labels[part], minlength=5)
        expected = np.bincount(labels) * len(part) / n
        assert np.all(np.abs(counts - expected) <= 1), (fraction, counts, expected)
        assert abs(len(part) / n - fraction) < 1e-3


def test_split_indices_seeded() -> None:
    labels = _labels([100] * 5)
    first = stratified_split_indices(labels, seed=7)
    again = stratified_split_indices(labels, seed=7)
    other = stratified_split_indices(labels, seed=8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[2], other[2])


@pytest.mark.parametrize(
    ("val", "test", "match"),
    [
        (0.0, 0.2, "val_fraction must lie in"),
        (0.1, 1.0, "test_fraction must lie in"),
        (-0.1, 0.2, "val_fraction must lie in"),
        (0.5, 0.5, "must be < 1"),
        (0.6, 0.7, "must be < 1"),
    ],
)
def test_bad_fractions_raise(val: float, test: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        stratified_split_indices(_labels([50, 50]), val_fraction=val, test_fraction=test)
    with pytest.raises(ValueError, match=match):
        load_images("digits", val_fraction=val, test_fraction=test)


def test_too_small_split_raises() -> None:
    with pytest.raises(ValueError, match="fewer rows than classes"):
        stratified_split_indices(_labels([10] * 10), val_fraction=0.02, test_fraction=0.2)


def test_unknown_dataset_and_split_raise() -> None:
    with pytest.raises(ValueError, match="choose one of mnist5k, digits"):
        load_images("cifar10")
    splits = load_images("digits")
    with pytest.raises(ValueError, match="choose one of train, val, test"):
        splits.split("validation")
    with pytest.raises(ValueError, match="choose one of train, val, test"):
        splits.indices("all")


def test_image_splits_checks_shapes_and_indices() -> None:
    x, y = torch.zeros(4, 1, 28, 28), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="same N"):
        ImageSplits("toy", x, x, x, y[:3], y, y, num_classes=1)
    with pytest.raises(ValueError, match="one row index per image"):
        ImageSplits("toy", x, x, x, y, y, y, num_classes=1, train_idx=torch.arange(3))
    toy = ImageSplits("toy", x, x[:2], x[:1], y, y[:2], y[:1], num_classes=1)
    assert toy.sizes == {"train": 4, "val": 2, "test": 1}
    with pytest.raises(ValueError, match="without row indices"):
        toy.indices("train")


# ------------------------------------------------------------------------------------------------------------
# digits (ships with scikit-learn)
# ------------------------------------------------------------------------------------------------------------


def test_registry() -> None:
    assert list(IMAGE_DATASETS) == ["mnist5k", "digits"]
    assert IMAGE_DATASETS["digits"] is load_digits_images


def test_digits_sizes_dtypes_range() -> None:
    images, labels = load_digits_images()
    assert images.shape == (1797, 1, 28, 28) and images.dtype == np.float32
    assert labels.shape == (1797,) and labels.dtype == np.int64
    assert images.min() == 0.0 and images.max() == 1.0
    splits = load_images("digits")
    assert splits.num_classes == 10
    assert sum(splits.sizes.values()) == 1797
    assert splits.sizes == {"train": 1258, "val": 180, "test": 359}
    for name in SPLIT_NAMES:
        x, y = splits.split(name)
        assert x.dtype == torch.float32 and x.shape[1:] == (1, 28, 28) and y.dtype == torch.int64
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        assert torch.equal(x, torch.from_numpy(images)[splits.indices(name)])
        assert torch.equal(y, torch.from_numpy(labels)[splits.indices(name)])


def test_digits_upsampling_keeps_the_8x8_content() -> None:
    from sklearn.datasets import load_digits

    images, _ = load_digits_images()
    back = F.adaptive_avg_pool2d(torch.from_numpy(images), 8).flatten().numpy()
    original = (load_digits().images / 16.0).ravel()
    assert np.corrcoef(back, original)[0, 1] > 0.95


def test_digits_splits_disjoint_stratified_and_seeded() -> None:
    splits = load_images("digits", seed=0)
    _, labels = load_digits_images()
    indices = [splits.indices(name).numpy() for name in SPLIT_NAMES]
    joined = np.concatenate(indices)
    assert len(np.unique(joined)) == len(joined) == 1797
    expected = np.bincount(labels) * 0.2
    assert np.all(np.abs(np.bincount(labels[indices[2]], minlength=10) - expected) <= 1)
    again, other = load_images("digits", seed=0), load_images("digits", seed=1)
    for name in SPLIT_NAMES:
        assert torch.equal(splits.split(name)[0], again.split(name)[0])
        assert torch.equal(splits.indices(name), again.indices(name))
        assert not torch.equal(splits.indices(name), other.indices(name))


def test_repr_gives_sizes() -> None:
    text = str(load_images("digits"))
    assert text == repr(load_images("digits"))
    assert "train=1258" in text and "val=180" in text and "test=359" in text and "num_classes=10" in text


def test_mnist5k_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="mnist_5k.csv.gz"):
        load_images("mnist5k", root=tmp_path)


# ------------------------------------------------------------------------------------------------------------
# MNIST-5k (copied from the mirror into a temporary data root)
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist_root(data_mirror: Path, real_data_root: Path) -> Path:
    fill_data_root(data_mirror, real_data_root, only=["mnist5k"])
    return real_data_root


@pytest.fixture(scope="module")
def mnist(mnist_root: Path) -> tuple[np.ndarray, np.ndarray]:
    return IMAGE_DATASETS["mnist5k"](root=mnist_root)


@pytest.mark.data
def test_real_mnist5k_raw(mnist: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = mnist
    assert images.shape == (5000, 1, 28, 28) and images.dtype == np.float32
    assert images.min() == 0.0 and images.max() == 1.0
    assert np.bincount(labels).tolist() == [500] * 10


@pytest.mark.data
def test_real_mnist5k_splits(mnist_root: Path, mnist: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = mnist
    splits = load_images("mnist5k", root=mnist_root)
    assert splits.name == "mnist5k" and splits.num_classes == 10
    assert splits.sizes == {"train": 3500, "val": 500, "test": 1000}
    indices = [splits.indices(name).numpy() for name in SPLIT_NAMES]
    joined = np.concatenate(indices)
    assert len(np.unique(joined)) == len(joined) == 5000
    for name, idx, per_class in zip(SPLIT_NAMES, indices, (350, 50, 100), strict=True):
        x, y = splits.split(name)
        assert x.dtype == torch.float32 and tuple(x.shape) == (len(idx), 1, 28, 28)
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0 and y.dtype == torch.int64
        assert np.array_equal(x.numpy(), images[idx]) and np.array_equal(y.numpy(), labels[idx])
        assert np.all(np.abs(np.bincount(y.numpy(), minlength=10) - per_class) <= 1)


@pytest.mark.data
def test_real_mnist5k_seeded(mnist_root: Path) -> None:
    first = load_images("mnist5k", seed=5, root=mnist_root)
    again = load_images("mnist5k", seed=5, root=mnist_root)
    other = load_images("mnist5k", seed=6, root=mnist_root)
    assert torch.equal(first.test_x, again.test_x) and torch.equal(first.train_y, again.train_y)
    assert not torch.equal(first.test_idx, other.test_idx)


def test_max_rows_keeps_a_seeded_stratified_subset() -> None:
    small = load_images("digits", max_rows=500)
    assert sum(small.sizes.values()) == 500 and small.num_classes == 10
    counts = torch.bincount(torch.cat([small.train_y, small.val_y, small.test_y]), minlength=10)
    assert int(counts.max() - counts.min()) <= 3  # digits: 174 to 183 images per class
    assert torch.equal(small.train_x, load_images("digits", max_rows=500).train_x)
    with pytest.raises(ValueError, match="max_rows must be"):
        load_images("digits", max_rows=0)
