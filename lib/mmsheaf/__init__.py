"""mmsheaf: metric embeddings of multimodal data on graphs — the library behind the report.

Modules: :mod:`mmsheaf.paths` (folders), :mod:`mmsheaf.data` (datasets), :mod:`mmsheaf.report` (figures,
tables, macros, provenance), :mod:`mmsheaf.notebooks` / :mod:`mmsheaf.runner` (papermill runs),
:mod:`mmsheaf.paper` (the thesis PDF).
"""

__version__ = "0.1.0"
