"""What every study shares to run many trainings; it knows no study.

- :mod:`~mmsheaf.runs.keys`: run keys (:func:`canonical_json`, :func:`spec_key`), seeds (:func:`set_seed`);
- :mod:`~mmsheaf.runs.executor`: where runs execute (this process, or a ``dask.distributed`` cluster);
- :mod:`~mmsheaf.runs.cache`: :class:`KeyedSpec`, the one run cache :class:`RunCache` and the one resumable
  loop :func:`run_cached`;
- :mod:`~mmsheaf.runs.checks`: what a trainer checks so that no run reports a number computed from NaN
  (:func:`require_finite`, :class:`NonFiniteTrainingError`);
- :mod:`~mmsheaf.runs.ledger`: run ledgers, the cache's records kept with a notebook's outputs;
- :mod:`~mmsheaf.runs.hpo`: Optuna studies with an exact trial budget shared by any number of workers, on
  :mod:`~mmsheaf.runs.space` (search spaces), :mod:`~mmsheaf.runs.storage` (journal file or database, with
  heartbeats) and :mod:`~mmsheaf.runs.budget` (trial slots, dead workers' trials retried).
"""

from .cache import KeyedSpec, RunCache, RunsFailed, run_cached
from .checks import NonFiniteTrainingError, require_finite
from .keys import canonical_json, set_seed, spec_key

__all__ = [
    "KeyedSpec",
    "NonFiniteTrainingError",
    "RunCache",
    "RunsFailed",
    "canonical_json",
    "require_finite",
    "run_cached",
    "set_seed",
    "spec_key",
]
