"""Tests of the seeded batched image augmentations (mmsheaf.data.augment)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from mmsheaf.data import ImageAugment, gaussian_noise, random_affine, random_erasing, random_resized_crop
from torch import Tensor

Augmentation = Callable[[Tensor, torch.Generator], Tensor]

AUGMENTATIONS: dict[str, Augmentation] = {
    "crop": random_resized_crop,
    "affine": random_affine,
    "noise": gaussian_noise,
    "erasing": lambda x, g: random_erasing(x, g, p=0.5),
    "pipeline": ImageAugment(),
}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _batch(b: int = 16, c: int = 1, h: int = 28, w: int = 28) -> Tensor:
    return torch.rand(b, c, h, w, generator=_gen(123))


# ------------------------------------------------------------------------------------------------------------
# Common properties
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
@pytest.mark.parametrize("shape", [(16, 1, 28, 28), (5, 3, 20, 36)])
def test_shape_dtype_range(name: str, shape: tuple[int, int, int, int]) -> None:
    x = _batch(*shape)
    before = x.clone()
    out = AUGMENTATIONS[name](x, _gen(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert torch.equal(x, before)  # the input is not modified


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_seeded(name: str) -> None:
    x = _batch()
    first, again = AUGMENTATIONS[name](x, _gen(0)), AUGMENTATIONS[name](x, _gen(0))
    other = AUGMENTATIONS[name](x, _gen(1))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_parameters_differ_across_a_batch(name: str) -> None:
    x = _batch(1).expand(8, -1, -1, -1).contiguous()
    out = AUGMENTATIONS[name](x, _gen(0))
    flat = out.flatten(1)
    distinct = {tuple(row.tolist()) for row in flat}
    assert len(distinct) >= (4 if name == "erasing" else 8)  # erasing leaves about half unchanged


def test_float64_batches_work() -> None:
    out = ImageAugment()(_batch().double(), _gen(0))
    assert out.dtype == torch.float64


# ------------------------------------------------------------------------------------------------------------
# Identities and geometry
# ------------------------------------------------------------------------------------------------------------


def test_unit_crop_is_identity() -> None:
    x = _batch()
    out = random_resized_crop(x, _gen(0), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("shape", [(16, 1, 28, 28), (4, 3, 20, 36)])
def test_zero_affine_is_identity(shape: tuple[int, int, int, int]) -> None:
    x = _batch(*shape)
    out = random_affine(x, _gen(0), degrees=0.0, translate=0.0, scale=(1.0, 1.0))
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_crop_of_a_quarter_halves_the_slope_of_a_ramp() -> None:
    # A horizontal ramp; a crop of a quarter of the area (half of each side) stretches it by 2.
    ramp = torch.linspace(0.0, 1.0, 64).expand(6, 1, 64, 64).contiguous()
    out = random_resized_crop(ramp, _gen(0), scale=(0.25, 0.25), ratio=(1.0, 1.0))
    slope_in = (ramp[..., 1:] - ramp[..., :-1]).mean()
    slope_out = (out[..., 1:] - out[..., :-1]).mean(dim=(1, 2, 3))
    torch.testing.assert_close(slope_out, torch.full_like(slope_out, float(slope_in) / 2), atol=1e-4, rtol=0)
    assert torch.all(out[..., 0] >= 0.0) and torch.all(out[..., -1] <= 1.0)
    assert out[:, 0, 0, 0].unique().numel() > 1  # crop centres differ


def test_affine_rotation_keeps_distances_on_non_square_images() -> None:
    height, width = 41, 81
    rows = torch.arange(height, dtype=torch.float32).view(-1, 1)
    cols = torch.arange(width, dtype=torch.float32).view(1, -1)
    cy, cx = (height - 1) / 2, (width - 1) / 2
    blob = torch.exp(-((rows - cy - 5) ** 2 + (cols - cx - 12) ** 2) / 4).expand(8, 1, height, width)
    out = random_affine(blob.contiguous(), _gen(1), degrees=180.0, translate=0.0, scale=(1.0, 1.0))
    mass = out.sum(dim=(1, 2, 3))
    y = (out[:, 0] * rows).sum(dim=(1, 2)) / mass
    x = (out[:, 0] * cols).sum(dim=(1, 2)) / mass
    radius = ((y - cy) ** 2 + (x - cx) ** 2).sqrt()
    torch.testing.assert_close(radius, torch.full_like(radius, 13.0), atol=0.02, rtol=0)


def test_affine_pads_with_zeros() -> None:
    ones = torch.ones(8, 1, 28, 28)
    out = random_affine(ones, _gen(0), degrees=45.0, translate=0.0, scale=(0.5, 0.5))
    assert torch.all(out[..., 0, :] == 0) and torch.all(out[..., :, -1] == 0)  # the uncovered margin
    assert torch.all(out[..., 12:16, 12:16] > 1 - 1e-5)  # the centre stays covered


# ------------------------------------------------------------------------------------------------------------
# Noise and erasing
# ------------------------------------------------------------------------------------------------------------


def test_noise_has_the_requested_std() -> None:
    x = torch.full((64, 1, 28, 28), 0.5)
    out = gaussian_noise(x, _gen(0), std=0.05)  # 0.5 +- 10 std never reaches 0 or 1
    noise = out - x
    assert abs(float(noise.mean())) < 2e-3
    assert abs(float(noise.std()) - 0.05) < 1e-3
    assert torch.equal(gaussian_noise(x, _gen(0), std=0.0), x)


def test_noise_is_clamped() -> None:
    out = gaussian_noise(torch.ones(4, 1, 8, 8), _gen(0), std=0.5)
    assert float(out.max()) == 1.0 and float(out.min()) >= 0.0


def test_erasing_p1_erases_one_rectangle_within_the_scale_bounds() -> None:
    scale, h, w = (0.02, 0.15), 28, 28
    out = random_erasing(torch.ones(500, 1, h, w), _gen(0), p=1.0, scale=scale, ratio=(0.3, 3.3))
    zero = out[:, 0] == 0
    rows, cols = zero.any(dim=2), zero.any(dim=1)
    rect_h, rect_w = rows.sum(dim=1), cols.sum(dim=1)
    erased = zero.sum(dim=(1, 2))
    assert torch.all(erased > 0)
    assert torch.equal(erased, rect_h * rect_w)  # one axis-aligned rectangle per image
    # The sides are sqrt(s * H * W * r) and sqrt(s * H * W / r) rounded to whole pixels, s within scale.
    assert torch.all((rect_h + 0.5) * (rect_w + 0.5) >= scale[0] * h * w)
    assert torch.all((rect_h - 0.5) * (rect_w - 0.5) <= scale[1] * h * w)
    fraction = erased.float() / (h * w)
    assert 0.015 <= float(fraction.min()) and float(fraction.max()) <= 0.17
    assert float(fraction.max()) - float(fraction.min()) > 0.08  # areas spread over the range


def test_erasing_value_and_channels() -> None:
    out = random_erasing(torch.ones(20, 3, 16, 16), _gen(0), p=1.0, value=0.25)
    changed = out != 1.0
    assert torch.all(out[changed] == 0.25)
    assert torch.equal(changed[:, 0], changed[:, 1]) and torch.equal(changed[:, 0], changed[:, 2])


def test_erasing_p0_changes_nothing_and_p_sets_the_rate() -> None:
    x = _batch()
    assert torch.equal(random_erasing(x, _gen(0), p=0.0), x)
    out = random_erasing(torch.ones(2000, 1, 8, 8), _gen(0), p=0.3)
    rate = float((out == 0).flatten(1).any(dim=1).float().mean())
    assert abs(rate - 0.3) < 0.04


# ------------------------------------------------------------------------------------------------------------
# The pipeline
# ------------------------------------------------------------------------------------------------------------


def test_none_is_the_identity() -> None:
    x = _batch()
    augment = ImageAugment.none()
    assert not augment.crops and not augment.transforms
    out = augment(x, _gen(0))
    assert torch.equal(out, x) and out is not x
    v1, v2 = augment.two_views(x, _gen(0))
    assert torch.equal(v1, x) and torch.equal(v2, x)


def test_two_views_differ_and_are_seeded() -> None:
    x = _batch()
    v1, v2 = ImageAugment().two_views(x, _gen(0))
    w1, w2 = ImageAugment().two_views(x, _gen(0))
    assert v1.shape == v2.shape == x.shape
    assert torch.equal(v1, w1) and torch.equal(v2, w2)
    assert torch.all((v1 - v2).flatten(1).abs().amax(dim=1) > 0)  # every image's two views differ


def test_pipeline_applies_each_step() -> None:
    x = _batch()
    assert torch.equal(
        ImageAugment(**{**_none_fields(), "noise_std": 0.2})(x, _gen(0)),
        gaussian_noise(x, _gen(0), 0.2),
    )
    assert torch.equal(
        ImageAugment(**{**_none_fields(), "degrees": 30.0})(x, _gen(0)),
        random_affine(x, _gen(0), 30.0, 0.0, (1.0, 1.0)),
    )


def _none_fields() -> dict[str, object]:
    none = ImageAugment.none()
    return {name: getattr(none, name) for name in none.__dataclass_fields__}


def test_config_is_frozen_and_normalises_lists() -> None:
    augment = ImageAugment(crop_scale=[0.5, 1], degrees=5)  # type: ignore[arg-type]
    assert augment.crop_scale == (0.5, 1.0) and isinstance(augment.degrees, float)
    assert hash(augment) == hash(ImageAugment(crop_scale=(0.5, 1.0), degrees=5.0))
    with pytest.raises(AttributeError):
        augment.degrees = 3.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"crop_scale": (0.0, 1.0)}, r"crop_scale must be a pair .* in \(0, 1\]"),
        ({"crop_scale": (0.8, 0.6)}, "min <= max"),
        ({"crop_scale": (0.5, 1.2)}, "crop_scale"),
        ({"crop_scale": 0.5}, "crop_scale must be a pair"),
        ({"crop_ratio": (-1.0, 2.0)}, "crop_ratio"),
        ({"degrees": -1.0}, r"degrees must lie in \[0, 180\]"),
        ({"degrees": math.nan}, "degrees"),
        ({"translate": 1.5}, r"translate must lie in \[0, 1\]"),
        ({"affine_scale": (0.0, 1.0)}, "affine_scale"),
        ({"noise_std": -0.1}, "noise_std"),
        ({"erase_p": 1.1}, "erase_p"),
        ({"erase_scale": (0.1, 1.5)}, "erase_scale"),
        ({"erase_ratio": (3.0, 0.3)}, "erase_ratio"),
        ({"erase_value": 2.0}, "erase_value"),
        ({"erase_ratio": ("a", "b")}, "erase_ratio"),
    ],
)
def test_bad_config_raises(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ImageAugment(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda x, g: random_resized_crop(x, g, scale=(0.0, 1.0)), "scale"),
        (lambda x, g: random_resized_crop(x, g, ratio=(2.0, 1.0)), "ratio"),
        (lambda x, g: random_affine(x, g, degrees=200.0), "degrees"),
        (lambda x, g: random_affine(x, g, translate=-0.1), "translate"),
        (lambda x, g: gaussian_noise(x, g, std=-1.0), "std"),
        (lambda x, g: random_erasing(x, g, p=2.0), "p must lie"),
        (lambda x, g: random_erasing(x, g, scale=(0.2, 0.1)), "scale"),
        (lambda x, g: random_erasing(x, g, value=-1.0), "value"),
        (lambda x, g: random_affine(x[0], g), r"\(B, C, H, W\)"),
        (lambda x, g: random_erasing((x > 0.5).long(), g), r"\(B, C, H, W\)"),
    ],
)
def test_bad_arguments_raise(call: Augmentation, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call(_batch(), _gen(0))
