r"""Tabular encoder: a row's numerical and categorical cells to a ``token_dim`` token with pytorch-frame's
`FT-Transformer <https://arxiv.org/abs/2106.11959>`_ (Gorishniy et al., NeurIPS 2021).

**Column statistics** come from :func:`torch_frame.data.stats.compute_col_stats` on the *training* rows whose
tabular record is observed (never on rows with ``tabular_mask`` ``False``, whose cells are not read), and are
then made safe:

* numerical: a column with no finite training cell gets mean 0 and std 1; a (near-)constant column gets std 1
  (pytorch-frame divides by ``std + 1e-6``, which would blow any other value up to :math:`10^6`);
* categorical: pytorch-frame's ``EmbeddingEncoder`` takes the number of categories from the ``COUNT`` statistic
  and ``NAStrategy.MOST_FREQUENT`` fills a missing cell with code ``0``, assuming codes are ranked by training
  frequency. :class:`TabularEncoder` therefore re-codes every column by frequency rank (ties by code) and
  appends the categories that no training row has (count 0), so every code in ``[0, K_j)`` has an embedding.

**Missing cells** (``NaN`` numerics, and ``±inf``, which are treated as missing; ``-1`` categories) are
imputed by the stype encoders' NA strategies, checked in pytorch-frame 0.3.0's source
(``StypeEncoder.na_forward``): ``NAStrategy.MEAN`` replaces a ``NaN`` numeric by the training mean (so its
standardised value is 0) and ``NAStrategy.MOST_FREQUENT`` a ``-1`` code by the most frequent training
category, before encoding, so no ``NaN`` reaches the Transformer.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn
from torch_frame import NAStrategy, TensorFrame, stype
from torch_frame.data.stats import StatType, compute_col_stats
from torch_frame.nn.conv import FTTransformerConvs
from torch_frame.nn.encoder import EmbeddingEncoder, LinearEncoder
from torch_frame.nn.models import FTTransformer

from .inputs import ModalityInputs

__all__ = ["TabularEncoder", "TabularStats", "tabular_col_stats"]


class TabularStats:
    """Column statistics of a table for pytorch-frame, and the frequency-rank re-coding of its categories.

    Attributes:
        col_stats: ``{column key: {StatType: value}}`` as pytorch-frame expects (keys ``"num:<name>"`` and
            ``"cat:<name>"``, so a numerical and a categorical column may share a name).
        num_keys / cat_keys: The column keys in the order of ``x_num`` / ``x_cat``.
        num_mean / num_std: Per numerical column (the safe values also given to pytorch-frame).
        cat_rank: Per categorical column, the frequency rank of every code ``0 .. K_j - 1``.
    """

    def __init__(
        self,
        col_stats: dict[str, dict[StatType, Any]],
        num_keys: list[str],
        cat_keys: list[str],
        num_mean: list[float],
        num_std: list[float],
        cat_rank: list[list[int]],
    ) -> None:
        self.col_stats, self.num_keys, self.cat_keys = col_stats, num_keys, cat_keys
        self.num_mean, self.num_std, self.cat_rank = num_mean, num_std, cat_rank


def tabular_col_stats(inputs: ModalityInputs, rows: Tensor | None = None) -> TabularStats:
    r"""Column statistics of ``inputs`` over ``rows`` (default all) whose tabular record is observed.

    See the module docstring for how unusable statistics (all missing, constant columns, unseen categories) are
    replaced.
    """
    observed = inputs.mask("tabular")
    if rows is not None:
        keep = torch.zeros_like(observed)
        keep[rows.to(observed.device)] = True
        observed = observed & keep
    sel = observed.nonzero().squeeze(1).cpu()
    col_stats: dict[str, dict[StatType, Any]] = {}
    num_keys: list[str] = []
    num_mean: list[float] = []
    num_std: list[float] = []
    if inputs.x_num is not None:
        x_num = inputs.x_num.detach().cpu()[sel].double()
        for j, name in enumerate(inputs.num_names or ()):
            stats = compute_col_stats(pd.Series(x_num[:, j].numpy()), stype.numerical)
            mean, std = stats[StatType.MEAN], stats[StatType.STD]
            mean = float(mean) if mean is not None and math.isfinite(mean) else 0.0
            std = float(std) if std is not None and math.isfinite(std) else 0.0
            if std <= 1e-6 * max(1.0, abs(mean)):
                std = 1.0
            quantiles = stats[StatType.QUANTILES]
            if not all(math.isfinite(q) for q in quantiles):
                quantiles = [mean] * 5
            key = f"num:{name}"
            col_stats[key] = {StatType.MEAN: mean, StatType.STD: std, StatType.QUANTILES: list(quantiles)}
            num_keys.append(key)
            num_mean.append(mean)
            num_std.append(std)
    cat_keys: list[str] = []
    cat_rank: list[list[int]] = []
    if inputs.x_cat is not None:
        x_cat = inputs.x_cat.detach().cpu()[sel]
        for j, (name, k) in enumerate(zip(inputs.cat_names or (), inputs.num_categories or (), strict=True)):
            codes = x_cat[:, j]
            values, counts = compute_col_stats(pd.Series(codes[codes >= 0].numpy()), stype.categorical)[
                StatType.COUNT
            ]
            count = {int(v): int(c) for v, c in zip(values, counts, strict=True)}
            k = max(int(k), 1)  # a column without categories still gets one (never used) embedding
            order = sorted(range(k), key=lambda c: (-count.get(c, 0), c))
            rank = [0] * k
            for r, c in enumerate(order):
                rank[c] = r
            key = f"cat:{name}"
            col_stats[key] = {StatType.COUNT: (order, [count.get(c, 0) for c in order])}
            cat_keys.append(key)
            cat_rank.append(rank)
    return TabularStats(col_stats, num_keys, cat_keys, num_mean, num_std, cat_rank)


class TabularEncoder(nn.Module):
    r"""The FT-Transformer (`Gorishniy et al., NeurIPS 2021 <https://arxiv.org/abs/2106.11959>`_) of
    pytorch-frame over a row's numerical and categorical cells; its CLS output is the row's tabular token:

    .. math::
        \mathbf{t}_i = \mathbf{W}\,\operatorname{ReLU}\big(\operatorname{LN}(\operatorname{Transformer}(
        [\mathbf{c}, \mathbf{x}_{i,1}, \dots, \mathbf{x}_{i,F}])_{\text{CLS}})\big),
        \qquad \mathbf{x}_{i,j} = \begin{cases}
        \tfrac{x_{ij} - \mu_j}{\sigma_j}\,\mathbf{w}_j + \mathbf{b}_j & \text{numerical } j \\
        \mathbf{E}_j[\operatorname{rank}_j(x_{ij})] & \text{categorical } j \end{cases}

    with training-set means :math:`\mu_j`, standard deviations :math:`\sigma_j` and frequency ranks
    (:func:`tabular_col_stats`). Missing cells are imputed by ``NAStrategy.MEAN`` (numerical) and
    ``NAStrategy.MOST_FREQUENT`` (categorical) before encoding. In training mode, Gaussian noise of std
    ``noise_std`` is added to the *standardised* observed numerical cells (:math:`x_{ij} + \sigma_j
    \varepsilon`), an augmentation for contrastive views.

    Args:
        inputs: The table (columns, category counts; statistics from its rows).
        out_channels: Token size.
        channels: FT-Transformer width (divisible by ``heads``).
        num_layers: Transformer layers.
        heads: Attention heads.
        dropout: Transformer dropout.
        train_idx: Rows for the column statistics (default: all rows); rows with ``tabular_mask`` ``False``
            are never used.

    **Shapes:**
        - input ``rows``: :math:`(B,)` long row indices into ``inputs`` (rows with an observed record only)
        - output: :math:`(B, \text{out\_channels})`
    """

    def __init__(
        self,
        inputs: ModalityInputs,
        out_channels: int,
        channels: int = 32,
        num_layers: int = 2,
        heads: int = 8,
        dropout: float = 0.0,
        train_idx: Tensor | None = None,
    ) -> None:
        super().__init__()
        if not inputs.has_tabular:
            raise ValueError(
                "The tabular encoder needs at least one column: pass ModalityInputs(x_num=..., x_cat=...) or "
                "drop 'tabular' from EncoderConfig.modalities."
            )
        if channels < 1 or channels % heads != 0:
            raise ValueError(f"tab_channels ({channels}) must be a positive multiple of tab_heads ({heads}).")
        stats = tabular_col_stats(inputs, train_idx)
        self.num_categories = tuple(inputs.num_categories or ())
        self.num_numerical = len(stats.num_keys)
        self.num_keys, self.cat_keys = stats.num_keys, stats.cat_keys
        col_names_dict: dict[stype, list[str]] = {}
        if stats.num_keys:
            col_names_dict[stype.numerical] = list(stats.num_keys)
        if stats.cat_keys:
            col_names_dict[stype.categorical] = list(stats.cat_keys)
        self.col_names_dict = col_names_dict
        self.model = FTTransformer(
            channels=channels,
            out_channels=out_channels,
            num_layers=num_layers,
            col_stats=stats.col_stats,
            col_names_dict=col_names_dict,
            stype_encoder_dict={
                stype.numerical: LinearEncoder(na_strategy=NAStrategy.MEAN),
                stype.categorical: EmbeddingEncoder(na_strategy=NAStrategy.MOST_FREQUENT),
            },
        )
        # FTTransformer fixes the Transformer's dropout at 0.2: use the configured one (same backbone class).
        self.model.backbone = FTTransformerConvs(
            channels=channels, num_layers=num_layers, nhead=heads, dropout=dropout
        )
        self.register_buffer("num_std", torch.tensor(stats.num_std, dtype=torch.float32))
        sizes = [len(r) for r in stats.cat_rank]
        offsets = [sum(sizes[:j]) for j in range(len(sizes))]
        flat = [r for ranks in stats.cat_rank for r in ranks]
        self.register_buffer("cat_rank", torch.tensor(flat, dtype=torch.long))
        self.register_buffer("cat_offset", torch.tensor(offsets, dtype=torch.long))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.model.reset_parameters()

    def check_inputs(self, inputs: ModalityInputs) -> None:
        """``ValueError`` unless ``inputs`` has the columns and category counts this encoder was built for."""
        num = 0 if inputs.x_num is None else inputs.x_num.size(1)
        cats = tuple(inputs.num_categories or ())
        if num != self.num_numerical or cats != self.num_categories:
            raise ValueError(
                f"The tabular encoder was built for {self.num_numerical} numerical columns and categorical "
                f"columns with {self.num_categories} categories, the inputs have {num} and {cats}: pass the same "
                "kind of ModalityInputs the encoder was built from."
            )

    def tensor_frame(
        self,
        inputs: ModalityInputs,
        rows: Tensor,
        noise_std: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> TensorFrame:
        """The :class:`~torch_frame.TensorFrame` of ``rows``: non-finite numerics as ``NaN`` (plus noise in
        training mode), categories re-coded by frequency rank, ``-1`` kept for missing cells."""
        feat: dict[stype, Tensor] = {}
        if self.num_numerical:
            assert inputs.x_num is not None
            x = inputs.x_num[rows].float()
            x = torch.where(torch.isfinite(x), x, torch.full_like(x, float("nan")))
            if self.training and noise_std > 0:
                noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
                x = x + noise_std * self.num_std * noise  # NaN cells stay NaN (and are imputed)
            feat[stype.numerical] = x
        if self.cat_keys:
            assert inputs.x_cat is not None
            codes = inputs.x_cat[rows]
            ranks = self.cat_rank[self.cat_offset + codes.clamp(min=0)]
            feat[stype.categorical] = torch.where(codes >= 0, ranks, torch.full_like(ranks, -1))
        return TensorFrame(feat_dict=feat, col_names_dict=self.col_names_dict)

    def forward(
        self,
        inputs: ModalityInputs,
        rows: Tensor,
        noise_std: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        if rows.numel() == 0:
            lin = self.model.decoder[-1]
            return lin.weight.new_zeros(0, lin.out_features)
        return self.model(self.tensor_frame(inputs, rows, noise_std, generator))
