"""mmsheaf: metric embeddings of multimodal data on graphs — the library behind the report.

Data flows one way, ``data → sheaf → encoders → losses → <study> → runs → report``:

- the building blocks, which know no study: :mod:`mmsheaf.data` (raw files to graphs, tables, interactions,
  text embeddings), :mod:`mmsheaf.sheaf` (sheaf Laplacians, restriction maps, diffusion),
  :mod:`mmsheaf.encoders` (text, tabular and graph towers, fusion), :mod:`mmsheaf.losses`;
- one package per study, all of one shape (``protocol``, ``train``, ``metrics``/``evaluate``, ``numbers``):
  :mod:`mmsheaf.nsd`, :mod:`mmsheaf.recsys`, :mod:`mmsheaf.metric`;
- the toolkits every study calls: :mod:`mmsheaf.runs` (keys, the run cache, ledgers, Optuna) and
  :mod:`mmsheaf.report` (figures, tables, macros, provenance, papermill, the paper);
- :mod:`mmsheaf.paths`, :mod:`mmsheaf.atomic` and the command line :mod:`mmsheaf.__main__`.
"""

__version__ = "0.1.0"
