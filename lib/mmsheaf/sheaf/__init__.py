"""Sheaf machinery: sheaf Laplacians, restriction-map learners, sheaf diffusion layers and NSD models.

`Neural Sheaf Diffusion <https://arxiv.org/abs/2202.04579>`_ (Bodnar et al., NeurIPS 2022).

- :mod:`~mmsheaf.sheaf.index`: :func:`build_index` (once per graph) and the caches of indices per graph;
- :mod:`~mmsheaf.sheaf.kernels`: the custom autograd kernels (CSR products, :func:`batched_sym_inv_sqrt`);
- :mod:`~mmsheaf.sheaf.laplacian`: :func:`sheaf_laplacian` (a :class:`SheafLaplacian` applied with sparse
  products, never densified) and :func:`dirichlet_energy`;
- :mod:`~mmsheaf.sheaf.reference`: the dense coboundary reference :func:`dense_sheaf_laplacian` for tests;
- :mod:`~mmsheaf.sheaf.maps`: restriction maps learned from ``[x_u || x_v]`` (diagonal, orthogonal, general)
  and learned edge weights;
- :mod:`~mmsheaf.sheaf.conv`: :class:`SheafDiffusionConv` (one NSD step) and the ODE vector field;
- :mod:`~mmsheaf.sheaf.models`: :class:`DiscreteNSD`, :class:`ContinuousNSD` and their configs.
"""

from .conv import SheafDiffusionConv, SheafDiffusionODEFunc, fixed_signs
from .index import SheafIndex, SheafIndexCache, build_index
from .kernels import batched_sym_inv_sqrt
from .laplacian import NORMALISATIONS, SHEAF_KINDS, SheafLaplacian, dirichlet_energy, sheaf_laplacian
from .maps import (
    ACTIVATIONS,
    MAP_LEARNERS,
    ORTHOGONAL_MAPS,
    SHEAF_TYPES,
    EdgeWeightLearner,
    LinearMapLearner,
    MLPMapLearner,
    RestrictionMapLearner,
    SheafType,
    householder_orthogonal,
    matrix_exp_orthogonal,
    validate_sheaf,
)
from .models import ContinuousNSD, ContinuousNSDConfig, DiscreteNSD, NSDConfig, sheaf_parameter_groups
from .reference import dense_sheaf_laplacian

__all__ = [
    "ACTIVATIONS",
    "MAP_LEARNERS",
    "NORMALISATIONS",
    "ORTHOGONAL_MAPS",
    "SHEAF_KINDS",
    "SHEAF_TYPES",
    "ContinuousNSD",
    "ContinuousNSDConfig",
    "DiscreteNSD",
    "EdgeWeightLearner",
    "LinearMapLearner",
    "MLPMapLearner",
    "NSDConfig",
    "RestrictionMapLearner",
    "SheafDiffusionConv",
    "SheafDiffusionODEFunc",
    "SheafIndex",
    "SheafIndexCache",
    "SheafLaplacian",
    "SheafType",
    "batched_sym_inv_sqrt",
    "build_index",
    "dense_sheaf_laplacian",
    "dirichlet_energy",
    "fixed_signs",
    "householder_orthogonal",
    "matrix_exp_orthogonal",
    "sheaf_laplacian",
    "sheaf_parameter_groups",
    "validate_sheaf",
]
