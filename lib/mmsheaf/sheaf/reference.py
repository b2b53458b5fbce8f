r"""A dense sheaf Laplacian built from the coboundary matrix: the slow, obvious reference for tests.

`Neural Sheaf Diffusion <https://arxiv.org/abs/2202.04579>`_ (Bodnar et al., NeurIPS 2022) defines the sheaf
Laplacian as :math:`L_\mathcal{F} = \delta^\top \delta`, with the coboundary
:math:`(\delta x)_e = \mathcal{F}_{v \trianglelefteq e} x_v - \mathcal{F}_{u \trianglelefteq e} x_u` for
:math:`e = (u, v)`, and its normalised form :math:`(D + I)^{-1/2} L_\mathcal{F} (D + I)^{-1/2}`.
:func:`dense_sheaf_laplacian` forms exactly these matrices, densely and without any of the factorisations
of :func:`~mmsheaf.sheaf.laplacian.sheaf_laplacian`, which the tests compare against it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .index import SheafIndex
from .laplacian import NORMALISATIONS, SHEAF_KINDS

__all__ = ["dense_sheaf_laplacian"]


def dense_sheaf_laplacian(
    index: SheafIndex,
    maps: Tensor,
    sheaf: str = "diag",
    edge_weights: Tensor | None = None,
    normalisation: str | None = None,
    fixed_signs: Sequence[float] = (),
) -> Tensor:
    r"""Dense reference :math:`L = \delta^\top \delta` built from the coboundary matrix (slow; for tests).

    The coboundary :math:`\delta \in \mathbb{R}^{E d \times N d}` has, for the undirected edge
    :math:`e = (u, v)`, the block :math:`-w_e \mathcal{F}_{u \trianglelefteq e}` in column block :math:`u` and
    :math:`+w_e \mathcal{F}_{v \trianglelefteq e}` in column block :math:`v`. Fixed dimensions append the
    maps :math:`(1, -s)`. ``"sym"`` normalises with the dense block inverse square roots of
    :math:`L_{vv} + I` (from ``eigh``), whatever the map family. Arguments are those of
    :func:`~mmsheaf.sheaf.laplacian.sheaf_laplacian`; returns ``(N d_total, N d_total)``, node-major.
    """
    if sheaf not in SHEAF_KINDS:
        raise ValueError(f"unknown sheaf type {sheaf!r}: choose one of {SHEAF_KINDS}")
    n, e = index.num_nodes, index.num_edges
    f = torch.diag_embed(maps) if sheaf == "diag" else maps
    if edge_weights is not None:
        f = f * edge_weights.reshape(-1, 1, 1)
    d, k = f.size(-1), len(fixed_signs)
    if k:  # fixed dimensions: maps 1 on the forward copy and -s on the reverse copy, so L_uv = s
        signs = torch.tensor(fixed_signs, dtype=f.dtype, device=f.device)
        ones = torch.ones(e, k, dtype=f.dtype, device=f.device)
        full = f.new_zeros(2 * e, d + k, d + k)
        full[:, :d, :d] = f
        full[:, d:, d:] = torch.diag_embed(torch.cat([ones, -signs * ones]))
        f = full
    dt = d + k
    delta = torch.zeros(e, dt, n, dt, dtype=f.dtype, device=f.device)
    ar = torch.arange(e, device=f.device)
    u, v = index.src[:e], index.dst[:e]
    delta[ar, :, u, :] = -f[:e]
    delta[ar, :, v, :] = f[e:]
    delta = delta.reshape(e * dt, n * dt)
    lap = delta.t() @ delta
    if normalisation is None:
        return lap
    if normalisation == "sym":
        blocks = lap.view(n, dt, n, dt).diagonal(dim1=0, dim2=2).permute(2, 0, 1)  # (N, dt, dt)
        evals, evecs = torch.linalg.eigh(blocks + torch.eye(dt, dtype=lap.dtype))
        s = evecs @ torch.diag_embed(evals.rsqrt()) @ evecs.transpose(-1, -2)
    elif normalisation == "deg":
        deg = index.degree.to(lap.dtype)
        learned = (deg * (d if sheaf == "gen" else 1) + 1.0).rsqrt()
        fixed_s = (deg + 1.0).rsqrt()
        diag = torch.cat([learned.unsqueeze(1).expand(n, d), fixed_s.unsqueeze(1).expand(n, k)], 1)
        s = torch.diag_embed(diag)
    else:
        raise ValueError(f"unknown normalisation {normalisation!r}: choose one of {NORMALISATIONS}")
    s_full = torch.block_diag(*s)
    return s_full @ lap @ s_full
