"""Graph-regularised embeddings and distance measures (issue 18): the graph at training time only, and a sheaf
regulariser for heterophilic graphs.

- :mod:`~mmsheaf.graphreg.model`: :class:`RegularisedMLP` (notebook 01's MLP and a penalty on the edges of a
  graph: none, the plain one of Neural Graph Machines, or the sheaf one), :class:`MLPConfig`, :class:`RegConfig`;
- :mod:`~mmsheaf.graphreg.train`: how one run trains and is scored (:func:`train_graphreg`: full batch, the best
  validation epoch; :func:`inference_ms`);
- :mod:`~mmsheaf.graphreg.protocol`: the tasks (node classification on notebook 01's graphs, Neural Graph
  Machines' semi-supervised images), :class:`GraphRegRunSpec` and the cached runs (:func:`run_specs`).

The distances live in :mod:`mmsheaf.losses.distances`, the regularisers in :mod:`mmsheaf.losses.graph_reg`, the
k-nearest-neighbour graph of the images in :mod:`mmsheaf.data.semi_supervised`.
"""

from .model import REGULARISERS, MLPConfig, RegConfig, RegularisedMLP, normalise_maps
from .protocol import TASKS, GraphRegRunSpec, graphreg_cache, run_specs
from .train import GraphRegResult, GraphRegTrainConfig, inference_ms, train_graphreg

__all__ = [
    "REGULARISERS",
    "TASKS",
    "GraphRegResult",
    "GraphRegRunSpec",
    "GraphRegTrainConfig",
    "MLPConfig",
    "RegConfig",
    "RegularisedMLP",
    "graphreg_cache",
    "inference_ms",
    "normalise_maps",
    "run_specs",
    "train_graphreg",
]
