"""Seeded, batched image augmentations for two-view self-supervised learning.

The views of SimSiam (`Chen and He, CVPR 2021 <https://arxiv.org/abs/2011.10566>`_), BYOL
(`Grill et al., NeurIPS 2020 <https://arxiv.org/abs/2006.07733>`_), Barlow Twins
(`Zbontar et al., ICML 2021 <https://arxiv.org/abs/2103.03230>`_) and VICReg
(`Bardes et al., ICLR 2022 <https://arxiv.org/abs/2105.04906>`_), adapted to small grey-scale digits:
a random resized crop (as torchvision's ``RandomResizedCrop``, SimCLR's `Chen et al., ICML 2020
<https://arxiv.org/abs/2002.05709>`_ main augmentation), a small random affine map, Gaussian pixel noise and
random erasing (`Zhong et al., AAAI 2020 <https://arxiv.org/abs/1708.04896>`_). Colour jitter and flips
are left out: the images have one channel and a flipped digit is another symbol.

Every function takes a batch :math:`(B, C, H, W)` of floats in :math:`[0, 1]` and an explicit
:class:`torch.Generator`, draws its parameters per image from it (the same generator state gives the same
output) and is vectorised over the batch: the geometric ones build one affine matrix per image and resample
with :func:`torch.nn.functional.affine_grid` + :func:`~torch.nn.functional.grid_sample` (bilinear,
``align_corners=False``, so the identity matrix reproduces the image exactly), the erasing builds its
rectangles as masks from coordinate grids. Outputs are clamped to :math:`[0, 1]`. The random numbers are
drawn on the generator's device and moved to the batch's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ImageAugment", "gaussian_noise", "random_affine", "random_erasing", "random_resized_crop"]


# ------------------------------------------------------------------------------------------------------------
# Checks and random draws
# ------------------------------------------------------------------------------------------------------------


def _pair(name: str, value: Sequence[float], low: float, high: float, *, open_low: bool = False) -> None:
    """Raise unless ``value`` is ``(a, b)`` with ``low <= a <= b <= high`` (``low < a`` if ``open_low``)."""
    try:
        a, b = (float(v) for v in value)
        ok = math.isfinite(a) and math.isfinite(b) and (a > low if open_low else a >= low) and a <= b <= high
    except (TypeError, ValueError):  # not a pair of numbers
        ok = False
    if not ok:
        bracket = "(" if open_low else "["
        raise ValueError(
            f"{name} must be a pair (min, max) with min <= max, both in {bracket}{low:g}, {high:g}], "
            f"got {value!r}."
        )


def _scalar(name: str, value: float, low: float, high: float) -> None:
    try:
        ok = math.isfinite(value) and low <= value <= high
    except TypeError:  # not a number
        ok = False
    if not ok:
        raise ValueError(f"{name} must lie in [{low:g}, {high:g}], got {value!r}.")


def _check_batch(x: Tensor) -> None:
    if x.dim() != 4 or not x.is_floating_point():
        raise ValueError(
            f"Expected a float batch of images (B, C, H, W), got {x.dtype} of shape {tuple(x.shape)}: "
            "add the batch/channel dimensions with x[None] / x[:, None] and convert with x.float()."
        )


def _uniform(generator: torch.Generator, x: Tensor, low: float, high: float) -> Tensor:
    """One draw of :math:`U(low, high)` per image of ``x``, on ``x``'s device and dtype."""
    u = torch.rand(x.shape[0], generator=generator, device=generator.device, dtype=torch.float64)
    return (low + (high - low) * u).to(device=x.device, dtype=x.dtype)


def _log_uniform(generator: torch.Generator, x: Tensor, low: float, high: float) -> Tensor:
    """One draw per image of :math:`\\exp U(\\log low, \\log high)` (so ``r`` and ``1/r`` are as likely)."""
    return _uniform(generator, x, math.log(low), math.log(high)).exp()


def _resample(x: Tensor, theta: Tensor, padding_mode: str) -> Tensor:
    """Resample ``x`` at ``theta @ (u, v, 1)`` (normalised output -> input coordinates), bilinear."""
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)
    return out.clamp_(0.0, 1.0)


# ------------------------------------------------------------------------------------------------------------
# Augmentations
# ------------------------------------------------------------------------------------------------------------


def random_resized_crop(
    x: Tensor,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.6, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> Tensor:
    """Crop a random rectangle of each image and resize it back to the full size (``RandomResizedCrop``).

    Per image: an area fraction :math:`s \\sim U(\\text{scale})`, an aspect ratio (width / height)
    :math:`r` log-uniform in ``ratio``, crop sides :math:`w = W\\sqrt{s r H / W}`, :math:`h = H\\sqrt{s W /
    (r H)}`, each clipped to the image side (torchvision redraws instead, up to 10 times), and a centre drawn
    uniformly among those that keep the crop inside the image.

    Args:
        x: Images in :math:`[0, 1]`.
        generator: Source of randomness.
        scale: Range of the crop's area as a fraction of the image's, within :math:`(0, 1]`.
        ratio: Range of the crop's aspect ratio (width / height), positive.

    Returns:
        The resized crops, same shape and dtype as ``x``, in :math:`[0, 1]`.

    Shapes:
        - **x:** :math:`(B, C, H, W)`
        - **output:** :math:`(B, C, H, W)`
    """
    _check_batch(x)
    _pair("scale", scale, 0.0, 1.0, open_low=True)
    _pair("ratio", ratio, 0.0, math.inf, open_low=True)
    height, width = x.shape[-2:]
    area = _uniform(generator, x, *scale)
    aspect = _log_uniform(generator, x, *ratio)
    # Half-sides in normalised coordinates (the image spans [-1, 1]), i.e. the crop's fraction of each side.
    half_w = (area * aspect * height / width).sqrt().clamp(max=1.0)
    half_h = (area / aspect * width / height).sqrt().clamp(max=1.0)
    centre_x = (2.0 * _uniform(generator, x, 0.0, 1.0) - 1.0) * (1.0 - half_w)
    centre_y = (2.0 * _uniform(generator, x, 0.0, 1.0) - 1.0) * (1.0 - half_h)
    zero = torch.zeros_like(half_w)
    theta = torch.stack(
        [torch.stack([half_w, zero, centre_x], dim=-1), torch.stack([zero, half_h, centre_y], dim=-1)], dim=1
    )
    return _resample(x, theta, "border")


def random_affine(
    x: Tensor,
    generator: torch.Generator,
    degrees: float = 10.0,
    translate: float = 0.1,
    scale: tuple[float, float] = (0.9, 1.1),
) -> Tensor:
    """Rotate, scale and shift each image by a random amount around its centre, padding with zeros.

    Per image: an angle :math:`U(-\\text{degrees}, \\text{degrees})`, a shift :math:`U(-t, t)` times the
    width (horizontal) and the height (vertical) with :math:`t` = ``translate``, and a zoom factor
    :math:`U(\\text{scale})`, as torchvision's ``RandomAffine`` (no shear). Uncovered pixels become 0, the
    background of the digits.

    Args:
        x: Images in :math:`[0, 1]`.
        generator: Source of randomness.
        degrees: Largest rotation in degrees, in :math:`[0, 180]`.
        translate: Largest shift as a fraction of the image side, in :math:`[0, 1]`.
        scale: Range of the zoom factor, positive (``> 1`` enlarges the content).

    Returns:
        The transformed images, same shape and dtype as ``x``, in :math:`[0, 1]`.

    Shapes:
        - **x:** :math:`(B, C, H, W)`
        - **output:** :math:`(B, C, H, W)`
    """
    _check_batch(x)
    _scalar("degrees", degrees, 0.0, 180.0)
    _scalar("translate", translate, 0.0, 1.0)
    _pair("scale", scale, 0.0, math.inf, open_low=True)
    height, width = x.shape[-2:]
    angle = _uniform(generator, x, -math.radians(degrees), math.radians(degrees))
    shift_x = 2.0 * _uniform(generator, x, -translate, translate)  # normalised: the side spans 2
    shift_y = 2.0 * _uniform(generator, x, -translate, translate)
    zoom = _uniform(generator, x, *scale)
    # Output -> input map in pixel-proportional coordinates: p_in = R(-angle) (p_out - shift) / zoom; in the
    # normalised coordinates of affine_grid the off-diagonal terms carry the aspect ratio H / W.
    cos, sin = angle.cos() / zoom, angle.sin() / zoom
    a, b = cos, sin * height / width
    c, d = -sin * width / height, cos
    theta = torch.stack(
        [
            torch.stack([a, b, -(a * shift_x + b * shift_y)], dim=-1),
            torch.stack([c, d, -(c * shift_x + d * shift_y)], dim=-1),
        ],
        dim=1,
    )
    return _resample(x, theta, "zeros")


def gaussian_noise(x: Tensor, generator: torch.Generator, std: float = 0.1) -> Tensor:
    """Add :math:`\\mathcal{N}(0, \\text{std}^2)` noise to every pixel, then clamp to :math:`[0, 1]`.

    Args:
        x: Images in :math:`[0, 1]`.
        generator: Source of randomness.
        std: Standard deviation of the noise, in :math:`[0, 1]`.

    Returns:
        The noisy images, same shape and dtype as ``x``.

    Shapes:
        - **x:** :math:`(B, C, H, W)`
        - **output:** :math:`(B, C, H, W)`
    """
    _check_batch(x)
    _scalar("std", std, 0.0, 1.0)
    noise = torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype)
    return (x + std * noise.to(x.device)).clamp_(0.0, 1.0)


def random_erasing(
    x: Tensor,
    generator: torch.Generator,
    p: float = 0.25,
    scale: tuple[float, float] = (0.02, 0.15),
    ratio: tuple[float, float] = (0.3, 3.3),
    value: float = 0.0,
) -> Tensor:
    """With probability ``p`` per image, set one random rectangle (all channels) to ``value``.

    Per image: an area fraction :math:`s \\sim U(\\text{scale})`, an aspect ratio (height / width) :math:`r`
    log-uniform in ``ratio``, sides :math:`h = \\text{round}(\\sqrt{s H W r})`, :math:`w =
    \\text{round}(\\sqrt{s H W / r})` clipped to :math:`[1, H]` and :math:`[1, W]` (torchvision redraws
    instead), and a top-left corner uniform among those that keep the rectangle inside the image. The
    erased area is ``scale`` times :math:`HW` up to the rounding of the sides to whole pixels.

    Args:
        x: Images in :math:`[0, 1]`.
        generator: Source of randomness.
        p: Probability that an image gets a rectangle, in :math:`[0, 1]`.
        scale: Range of the rectangle's area as a fraction of the image's, within :math:`(0, 1]`.
        ratio: Range of the rectangle's aspect ratio (height / width), positive.
        value: Value written into the rectangle, in :math:`[0, 1]`.

    Returns:
        The images with their rectangles, same shape and dtype as ``x``.

    Shapes:
        - **x:** :math:`(B, C, H, W)`
        - **output:** :math:`(B, C, H, W)`
    """
    _check_batch(x)
    _scalar("p", p, 0.0, 1.0)
    _pair("scale", scale, 0.0, 1.0, open_low=True)
    _pair("ratio", ratio, 0.0, math.inf, open_low=True)
    _scalar("value", value, 0.0, 1.0)
    height, width = x.shape[-2:]
    apply = _uniform(generator, x, 0.0, 1.0) < p
    area = _uniform(generator, x, *scale) * (height * width)
    aspect = _log_uniform(generator, x, *ratio)
    rect_h = (area * aspect).sqrt().round().clamp(1, height)
    rect_w = (area / aspect).sqrt().round().clamp(1, width)
    top = (_uniform(generator, x, 0.0, 1.0) * (height - rect_h + 1)).floor().clamp(max=height - rect_h)
    left = (_uniform(generator, x, 0.0, 1.0) * (width - rect_w + 1)).floor().clamp(max=width - rect_w)
    rows = torch.arange(height, device=x.device, dtype=x.dtype).view(1, height, 1)
    cols = torch.arange(width, device=x.device, dtype=x.dtype).view(1, 1, width)
    inside_rows = (rows >= top.view(-1, 1, 1)) & (rows < (top + rect_h).view(-1, 1, 1))
    inside_cols = (cols >= left.view(-1, 1, 1)) & (cols < (left + rect_w).view(-1, 1, 1))
    mask = (inside_rows & inside_cols & apply.view(-1, 1, 1)).unsqueeze(1)  # (B, 1, H, W)
    return x.masked_fill(mask, value)


# ------------------------------------------------------------------------------------------------------------
# The pipeline
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageAugment:
    """The two-view augmentation pipeline: crop -> affine -> noise -> erasing (validated on construction).

    A step whose parameters make it the identity is skipped (no resampling, no random draws), so
    :meth:`none` returns its input unchanged.

    Args:
        crop_scale: Area range of :func:`random_resized_crop`, within :math:`(0, 1]`; ``(1, 1)`` with
            ``crop_ratio=(1, 1)`` turns the crop off (the crop is then the identity on square images).
        crop_ratio: Aspect-ratio range of the crop, positive.
        degrees: Largest rotation of :func:`random_affine`, in :math:`[0, 180]`.
        translate: Largest shift of the affine map as a fraction of the side, in :math:`[0, 1]`.
        affine_scale: Zoom range of the affine map, positive; the affine map is off with ``degrees=0``,
            ``translate=0`` and ``affine_scale=(1, 1)``.
        noise_std: Standard deviation of :func:`gaussian_noise`, in :math:`[0, 1]` (``0``: off).
        erase_p: Probability of :func:`random_erasing` per image, in :math:`[0, 1]` (``0``: off).
        erase_scale: Area range of the erased rectangle, within :math:`(0, 1]`.
        erase_ratio: Aspect-ratio range of the erased rectangle, positive.
        erase_value: Value written into the erased rectangle, in :math:`[0, 1]`.

    Shapes:
        - **x:** :math:`(B, C, H, W)` floats in :math:`[0, 1]`
        - **output:** :math:`(B, C, H, W)`, each view
    """

    crop_scale: tuple[float, float] = (0.6, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    degrees: float = 10.0
    translate: float = 0.1
    affine_scale: tuple[float, float] = (0.9, 1.1)
    noise_std: float = 0.1
    erase_p: float = 0.25
    erase_scale: tuple[float, float] = (0.02, 0.15)
    erase_ratio: tuple[float, float] = (0.3, 3.3)
    erase_value: float = 0.0

    def __post_init__(self) -> None:
        pairs = {
            "crop_scale": (0.0, 1.0),
            "crop_ratio": (0.0, math.inf),
            "affine_scale": (0.0, math.inf),
            "erase_scale": (0.0, 1.0),
            "erase_ratio": (0.0, math.inf),
        }
        scalars = {"degrees": (0.0, 180.0), "translate": (0.0, 1.0), "noise_std": (0.0, 1.0),
                   "erase_p": (0.0, 1.0), "erase_value": (0.0, 1.0)}  # fmt: skip
        try:
            for name, (low, high) in pairs.items():
                value = getattr(self, name)
                if isinstance(value, str) or not isinstance(value, Sequence):
                    raise ValueError(f"{name} must be a pair (min, max), got {value!r}.")
                _pair(name, value, low, high, open_low=True)
                object.__setattr__(self, name, (float(value[0]), float(value[1])))  # lists (YAML) -> tuples
            for name, (low, high) in scalars.items():
                _scalar(name, getattr(self, name), low, high)
                object.__setattr__(self, name, float(getattr(self, name)))
        except ValueError as exc:
            raise ValueError(f"ImageAugment: {exc}") from None

    @classmethod
    def none(cls) -> ImageAugment:
        """The identity pipeline: every step off."""
        return cls(
            crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), degrees=0.0, translate=0.0, affine_scale=(1.0, 1.0),
            noise_std=0.0, erase_p=0.0,
        )  # fmt: skip

    @property
    def crops(self) -> bool:
        """Whether the crop step changes images."""
        return self.crop_scale != (1.0, 1.0) or self.crop_ratio != (1.0, 1.0)

    @property
    def transforms(self) -> bool:
        """Whether the affine step changes images."""
        return self.degrees > 0 or self.translate > 0 or self.affine_scale != (1.0, 1.0)

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """One random view of every image of ``x`` (a new tensor; ``x`` is not modified)."""
        _check_batch(x)
        out = x
        if self.crops:
            out = random_resized_crop(out, generator, self.crop_scale, self.crop_ratio)
        if self.transforms:
            out = random_affine(out, generator, self.degrees, self.translate, self.affine_scale)
        if self.noise_std > 0:
            out = gaussian_noise(out, generator, self.noise_std)
        if self.erase_p > 0:
            out = random_erasing(
                out, generator, self.erase_p, self.erase_scale, self.erase_ratio, self.erase_value
            )
        return out.clone() if out is x else out

    def two_views(self, x: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Two independent views of every image (drawn one after the other from ``generator``)."""
        return self(x, generator), self(x, generator)
