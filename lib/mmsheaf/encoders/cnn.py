r"""A small convolutional encoder for 28x28 grey-scale images, and the MLP heads of self-supervised learning.

:class:`SmallCNN` is the backbone of the self-supervised study (notebook 06): three convolution blocks
(3x3 convolution, batch norm, ReLU; max-pooling after the first two) and a global average pool, so that a
:math:`(B, 1, 28, 28)` batch becomes a :math:`(B, 128)` representation. It is a scaled-down version of the
ResNet backbones of SimSiam (`Chen and He, CVPR 2021 <https://arxiv.org/abs/2011.10566>`_) and solo-learn, the
size a CPU can train in minutes on MNIST-5k.

:func:`mlp_head` builds the projector and predictor MLPs of those methods: linear layers with batch norm and
ReLU between them (SimSiam §3, "projection MLP" and "prediction MLP"; BYOL §3.3).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

__all__ = ["SmallCNN", "mlp_head"]


class SmallCNN(nn.Module):
    r"""Three-block CNN with a global average pool.

    Args:
        in_channels: Channels of the input images.
        widths: Output channels of the three blocks; the representation has ``widths[-1]`` features.

    **Shapes:** input :math:`(B, C, H, W)` with :math:`H, W \geq 4`; output :math:`(B, \text{widths}[-1])`.
    """

    def __init__(self, in_channels: int = 1, widths: Sequence[int] = (32, 64, 128)) -> None:
        super().__init__()
        if len(widths) < 1 or min(widths) < 1:
            raise ValueError(
                f"widths must be a non-empty sequence of positive channel counts, got {list(widths)}."
            )
        layers: list[nn.Module] = []
        c = in_channels
        for i, w in enumerate(widths):
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            c = w
        self.features = nn.Sequential(*layers)
        self.out_features = int(widths[-1])

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"SmallCNN takes a (B, C, H, W) batch, got shape {tuple(x.shape)}.")
        return self.features(x).mean(dim=(2, 3))


def mlp_head(
    in_features: int, hidden: int, out_features: int, layers: int = 2, *, last_bn: bool = False
) -> nn.Sequential:
    r"""An MLP head: ``layers`` linear layers, batch norm and ReLU after every hidden one.

    Args:
        in_features: Input width.
        hidden: Width of the hidden layers.
        out_features: Output width.
        layers: Number of linear layers (1: a single linear map).
        last_bn: Batch norm (no affine) on the output as well, as SimSiam's projector.

    **Shapes:** :math:`(B, \text{in}) \to (B, \text{out})`.
    """
    if layers < 1:
        raise ValueError(f"an MLP head needs at least one layer, got layers={layers}.")
    mods: list[nn.Module] = []
    width = in_features
    for _ in range(layers - 1):
        mods += [nn.Linear(width, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
        width = hidden
    mods.append(nn.Linear(width, out_features, bias=not last_bn))
    if last_bn:
        mods.append(nn.BatchNorm1d(out_features, affine=False))
    return nn.Sequential(*mods)
