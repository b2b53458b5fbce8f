r"""What a HUSE run is scored by: classification, cross-modal retrieval and hierarchical precision.

`"HUSE: Hierarchical Universal Semantic Embeddings" <https://arxiv.org/abs/1911.05978>`_ (Narayana et al.,
2019), Section 4: a trained model is judged by (i) the classification accuracy of each modality alone and of
their fusion (the mean of the observed modalities' softmax outputs), (ii) cross-modal retrieval in the shared
space (Recall@K; here also MAP@R) and (iii) hierarchical precision HP@K
(:func:`~mmsheaf.huse.hierarchy.hierarchical_precision`). Every score here reads a
:class:`~mmsheaf.huse.model.HuseOutput` of the test rows only, so a baseline that produces one (a contrastive
model, a per-modality model) is scored by the same code as HUSE:

- :func:`classification_scores`: accuracy of modality :math:`m` over the rows where it is observed,
  :math:`\mathrm{acc}_m = \frac{1}{|O_m|}\sum_{i \in O_m} \mathbb{1}[\arg\max_c W u_{m,i} = y_i]`, and the
  accuracy and macro-F1 of the fusion :math:`\hat y_i = \arg\max_c \frac{1}{|M_i|}\sum_{m \in M_i}
  \operatorname{softmax}(W u_{m,i})_c` (:math:`M_i` the observed modalities of row :math:`i`). A model without
  a class head is scored by a cosine k-NN vote against the training rows instead
  (:func:`~mmsheaf.evaluation.embeddings.classification_metrics`);
- :func:`retrieval_matrix`: R@K and MAP@R (:func:`~mmsheaf.evaluation.cross.cross_retrieval_metrics`) for
  every pair (query modality, database modality) and for the fused embeddings
  (:meth:`~mmsheaf.huse.model.HuseModel.fused`);
- :func:`hierarchical_scores`: HP@K of the fused embeddings of the test rows among themselves;
- :func:`missing_text_curve`: notebook 03's robustness protocol (the text of a nested, seeded fraction of the
  queries removed) for the fused embeddings and the fused classifier;
- :func:`evaluate_huse`: the first three on ``model.encode(inputs, test_idx)``, as one JSON-serialisable dict.

Every rate is in percent. Everything is computed on the CPU (test sets are small; the metrics are not
device-generic). A score that is undefined (a modality observed in no test row, no query with a relevant
item) is ``NaN``, which :func:`json.dumps` writes and :func:`json.loads` reads back.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import f1_score
from torch import Tensor

from mmsheaf.encoders.inputs import ModalityInputs
from mmsheaf.evaluation.cross import cross_retrieval_metrics
from mmsheaf.evaluation.embeddings import classification_metrics

from .hierarchy import ClassHierarchy, hierarchical_precision
from .model import HuseModel, HuseOutput

__all__ = [
    "FUSED",
    "KNN_K",
    "classification_scores",
    "evaluate_huse",
    "hierarchical_scores",
    "missing_text_curve",
    "retrieval_matrix",
    "text_removal_order",
]

FUSED = "fused"
"""The name of the fused embedding in :func:`retrieval_matrix` (``query == database == "fused"``)."""

KNN_K = 10
"""Neighbours of the cosine k-NN vote that classifies embeddings of a model without a class head."""

Classifier = Literal["auto", "head", "knn"]


class Encodes(Protocol):
    """Anything with ``encode(inputs, index) -> HuseOutput`` (e.g. :class:`~mmsheaf.huse.model.HuseModel`)."""

    def encode(self, inputs: ModalityInputs, index: Tensor) -> HuseOutput: ...


# ------------------------------------------------------------------------------------------------ helpers
def _cpu(out: HuseOutput) -> HuseOutput:
    """``out`` on the CPU, every dict in the order of ``out.embeddings`` (which :meth:`HuseModel.fused` and
    :meth:`HuseModel.fused_probabilities` assume), the logits of other keys dropped."""
    order = list(out.embeddings)
    own = [t.detach().cpu() if t is not None else None for t in (out.fused, out.fused_logits)]
    return HuseOutput(*({m: getattr(out, f)[m].detach().cpu() for m in order if m in getattr(out, f)}
                        for f in ("embeddings", "logits", "observed")), *own)  # fmt: skip


def _check(out: HuseOutput, labels: Tensor, what: str = "") -> tuple[HuseOutput, Tensor]:
    """``out`` and ``labels`` on the CPU, checked: one label per row, every modality with a mask."""
    if not out.embeddings:
        raise ValueError(f"The {what}output has no embeddings: pass the HuseOutput of "
                         "model.encode(inputs, rows).")  # fmt: skip
    unmasked = [m for m in out.embeddings if m not in out.observed]
    if unmasked:
        raise ValueError(f"The {what}output has no observed mask for {unmasked}: give one (B,) bool mask "
                         "per modality of its embeddings.")  # fmt: skip
    rows = {m: e.size(0) for m, e in out.embeddings.items()}
    labels = torch.as_tensor(labels).detach().cpu()
    if labels.dim() != 1 or labels.is_floating_point() or set(rows.values()) != {labels.numel()}:
        raise ValueError(f"The {what}labels must be (B,) integers, one per row of the output, got "
                         f"{labels.dtype} {tuple(labels.shape)} for {rows} rows: pass "
                         "labels[rows].")  # fmt: skip
    return _cpu(out), labels.long()


def _has_head(out: HuseOutput) -> bool:
    """Whether every modality has logits (a tensor with at least one class column)."""
    logits = out.logits
    return all(m in logits and logits[m].dim() == 2 and logits[m].size(1) > 0 for m in out.embeddings)


def _method(out: HuseOutput, classifier: Classifier, knn_reference: tuple[HuseOutput, Tensor] | None) -> str:
    if classifier not in ("auto", "head", "knn"):
        raise ValueError(f"classifier must be 'auto', 'head' or 'knn', got {classifier!r}.")
    method = ("head" if _has_head(out) else "knn") if classifier == "auto" else classifier
    if method == "head" and not _has_head(out):
        missing = [m for m in out.embeddings if m not in out.logits]
        raise ValueError(f"classifier='head' needs logits for every modality; {missing} have none: pass "
                         "knn_reference=(train output, train labels) and classifier='knn' (or 'auto').")
    if method == "knn" and knn_reference is None:
        raise ValueError("The output has no class head (logits) for every modality, so it is classified by "
                         "a k-NN vote: pass knn_reference=(model.encode(inputs, train_idx), "
                         "labels[train_idx]).")  # fmt: skip
    return method


def _reference(knn_reference: tuple[HuseOutput, Tensor], out: HuseOutput) -> tuple[HuseOutput, Tensor]:
    ref, ref_labels = _check(*knn_reference, what="knn_reference ")
    missing = [m for m in out.embeddings if m not in ref.embeddings]
    if missing:
        raise ValueError(f"knn_reference lacks the modalities {missing}: encode the training rows with the "
                         "same model.")  # fmt: skip
    return ref, ref_labels


def _scores(predicted: Tensor, truth: Tensor) -> tuple[float, float]:
    """Accuracy and macro-F1 (over the classes present in ``truth``), in %; NaN for no rows."""
    if truth.numel() == 0:
        return math.nan, math.nan
    y, p = truth.numpy(), predicted.numpy()
    f1 = f1_score(y, p, labels=np.unique(y), average="macro", zero_division=0)
    return 100.0 * float(np.mean(p == y)), 100.0 * float(f1)


def _knn(train_x: Tensor, train_y: Tensor, x: Tensor, y: Tensor, k: int) -> tuple[float, float]:
    if y.numel() == 0 or train_y.numel() == 0:
        return math.nan, math.nan
    s = classification_metrics(train_x, train_y, x, y, method="knn", k=k)
    return 100.0 * s["accuracy"], 100.0 * s["macro_f1"]


def _fusion(out: HuseOutput, labels: Tensor, method: str, ref: tuple[HuseOutput, Tensor] | None,
            k: int) -> tuple[float, float]:  # fmt: skip
    if method == "head":
        return _scores(HuseModel.fused_probabilities(out).argmax(1), labels)
    assert ref is not None
    return _knn(HuseModel.fused(ref[0]), ref[1], HuseModel.fused(out), labels, k)


# ------------------------------------------------------------------------------------ 1. classification
def classification_scores(
    out: HuseOutput,
    labels: Tensor,
    *,
    knn_reference: tuple[HuseOutput, Tensor] | None = None,
    classifier: Classifier = "auto",
    k: int = KNN_K,
) -> dict[str, float | str]:
    r"""Accuracy of each modality alone and accuracy and macro-F1 of the fusion (HUSE, Section 4.1), in %.

    With a class head (``"head"``): modality :math:`m` predicts :math:`\arg\max_c` of its logits, scored over
    the rows where :math:`m` is observed; the fusion predicts the argmax of
    :meth:`~mmsheaf.huse.model.HuseModel.fused_probabilities` (the mean softmax of each row's observed
    modalities), scored over all rows. Without one (``"knn"``): the same rows are classified by a cosine
    k-NN vote (:func:`~mmsheaf.evaluation.embeddings.classification_metrics`, ``k`` neighbours) among the
    reference rows where the modality is observed, and the fusion by a vote on
    :meth:`~mmsheaf.huse.model.HuseModel.fused` embeddings among all reference rows.

    Args:
        out: The output of the evaluated (test) rows.
        labels: Their classes.
        knn_reference: ``(output, labels)`` of the training rows, for the k-NN vote.
        classifier: ``"head"``, ``"knn"``, or ``"auto"``: the head when every modality has logits, else k-NN.
        k: Neighbours of the k-NN vote (default :data:`KNN_K`).

    Returns:
        ``acc_<modality>`` for each modality (NaN where no row observes it), ``acc_fusion``,
        ``macro_f1_fusion`` and ``classifier`` (``"head"`` or ``"knn"``).

    Shapes:
        - ``out``: :math:`(B, D)` embeddings, :math:`(B, C)` logits, :math:`(B,)` masks
        - ``labels``: :math:`(B,)`
    """
    out, labels = _check(out, labels)
    method = _method(out, classifier, knn_reference)
    ref = _reference(knn_reference, out) if method == "knn" else None
    scores: dict[str, float | str] = {}
    for m in out.embeddings:
        seen = out.observed[m].bool()
        if method == "head":
            scores[f"acc_{m}"] = _scores(out.logits[m][seen].argmax(1), labels[seen])[0]
        else:
            assert ref is not None
            ref_seen = ref[0].observed[m].bool()
            scores[f"acc_{m}"] = _knn(ref[0].embeddings[m][ref_seen], ref[1][ref_seen],
                                      out.embeddings[m][seen], labels[seen], k)[0]  # fmt: skip
    scores["acc_fusion"], scores["macro_f1_fusion"] = _fusion(out, labels, method, ref, k)
    scores["classifier"] = method
    return scores


# ----------------------------------------------------------------------------------------- 2. retrieval
def _retrieval_row(query: Tensor, q_labels: Tensor, db: Tensor, db_labels: Tensor, ks: Sequence[int],
                   same_rows: bool) -> dict[str, float]:  # fmt: skip
    same = q_labels.unsqueeze(1) == db_labels.unsqueeze(0)
    relevant = same.sum(1) - (same.diagonal().long() if same_rows else 0)
    if query.size(0) == 0 or db.size(0) == 0 or not bool((relevant > 0).any()):
        return {**{f"r@{k}": math.nan for k in ks}, "map_at_r": math.nan, "n_queries": 0}
    s = cross_retrieval_metrics(query, q_labels, db, db_labels, ks, same_rows=same_rows)
    return {**{f"r@{k}": 100.0 * s[f"r@{k}"] for k in ks}, "map_at_r": 100.0 * s["map_at_r"],
            "n_queries": int(s["n_queries"])}  # fmt: skip


def retrieval_matrix(out: HuseOutput, labels: Tensor, ks: Sequence[int] = (1, 5, 10)) -> pd.DataFrame:
    r"""Recall@K and MAP@R (in %) of cosine retrieval for every (query modality, database modality) pair.

    HUSE (Section 4.2) retrieves across modalities in the shared space: queries are the rows where the query
    modality is observed, the database the rows where the database modality is observed, relevant the
    database items of the query's class (:func:`~mmsheaf.evaluation.cross.cross_retrieval_metrics`). Within
    one modality (``same_rows``) a query never retrieves itself; across modalities its own item stays in the
    database (it is relevant). The last row ranks the fused embeddings of all rows among themselves.

    Args:
        out: The output of the test rows.
        labels: Their classes.
        ks: The K of Recall@K.

    Returns:
        One row per pair of the modalities observed in some row (model order, query-major), then
        ``("fused", "fused")``; columns ``query, database, r@<k>..., map_at_r, n_queries`` (``n_queries``:
        queries with at least one relevant item; a pair without any has NaN rates).

    Shapes:
        - ``out``: :math:`(B, D)` embeddings, :math:`(B,)` masks; ``labels`` :math:`(B,)`
    """
    out, labels = _check(out, labels)
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be a non-empty sequence of integers >= 1, got {ks}.")
    mods = [m for m in out.embeddings if bool(out.observed[m].any())]
    records = []
    for q in mods:
        q_rows = out.observed[q].bool()
        for d in mods:
            d_rows = out.observed[d].bool()
            records.append({"query": q, "database": d, **_retrieval_row(
                out.embeddings[q][q_rows], labels[q_rows], out.embeddings[d][d_rows], labels[d_rows], ks,
                same_rows=q == d)})  # fmt: skip
    fused = HuseModel.fused(out)
    records.append({"query": FUSED, "database": FUSED,
                    **_retrieval_row(fused, labels, fused, labels, ks, same_rows=True)})  # fmt: skip
    columns = ["query", "database", *(f"r@{k}" for k in ks), "map_at_r", "n_queries"]
    return pd.DataFrame.from_records(records, columns=columns)


# -------------------------------------------------------------------------------------- 3. hierarchy
def hierarchical_scores(out: HuseOutput, labels: Tensor, hierarchy: ClassHierarchy,
                        ks: Sequence[int] = (2, 5, 10)) -> dict[str, float]:  # fmt: skip
    r"""HP@K (in %) of the fused embeddings of the test rows among themselves, a row never retrieving itself.

    :func:`~mmsheaf.huse.hierarchy.hierarchical_precision` with query = database =
    :meth:`~mmsheaf.huse.model.HuseModel.fused` ``(out)`` (HUSE, Section 4.3).

    Returns:
        ``{"hp_at_<k>": value}`` for each ``k``.

    Shapes:
        - ``out``: :math:`(B, D)` embeddings, :math:`(B,)` masks; ``labels`` :math:`(B,)`, with :math:`B > K`
    """
    out, labels = _check(out, labels)
    fused = HuseModel.fused(out)
    hp = hierarchical_precision(fused, labels, fused, labels, hierarchy, ks, exclude_self=True)
    return {key: 100.0 * float(value) for key, value in hp.items()}


# ------------------------------------------------------------------------------------ 4. missing text
def text_removal_order(inputs: ModalityInputs, rows: Tensor, seed: int = 0) -> Tensor:
    """The rows of ``rows`` that have a text, in the seeded random order of removal: the fraction :math:`p`
    removes ``order[:round(p * len(order))]``, so the removed sets are nested across fractions."""
    if inputs.text is None and inputs.texts is None:
        raise ValueError("The inputs have no text modality: the missing-text curve needs inputs with text.")
    rows = rows.to(inputs.device)
    candidates = rows[inputs.mask("text")[rows]]
    perm = torch.randperm(candidates.numel(), generator=torch.Generator().manual_seed(seed))
    return candidates[perm.to(candidates.device)]


def missing_text_curve(
    model: Encodes,
    inputs: ModalityInputs,
    labels: Tensor,
    rows: Tensor,
    fractions: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    seed: int = 0,
    *,
    knn_reference: tuple[HuseOutput, Tensor] | None = None,
    classifier: Classifier = "auto",
    k: int = KNN_K,
) -> pd.DataFrame:
    r"""Fused MAP@R and fused accuracy (in %) of queries whose text is removed, a fraction at a time.

    Notebook 03's robustness protocol for HUSE: for each fraction :math:`p`, the text of
    ``round(p * n)`` of the :math:`n` rows of ``rows`` that have one (:func:`text_removal_order`: seeded,
    nested) is masked (``text_mask`` False) and ``model.encode`` recomputes the outputs of ``rows``. Their
    fused embeddings are the queries against the fused embeddings of the *unmodified* inputs of ``rows``
    (``same_rows``: a query never retrieves its own clean copy), so the score measures queries with missing
    text against an intact database; the accuracy is that of the fused classifier on the modified rows.

    Args:
        model: Anything with ``encode(inputs, index) -> HuseOutput``.
        inputs: All rows' inputs.
        labels: :math:`(N,)` classes of all rows.
        rows: The query (test) rows.
        fractions: Shares in :math:`[0, 1]` of the rows with text whose text is removed.
        seed: Seed of the removal order.
        knn_reference / classifier / k: As in :func:`classification_scores` (a model without a head).

    Returns:
        One row per fraction: ``fraction, n_removed, map_at_r, accuracy, n_queries``.
    """
    fractions = [float(p) for p in fractions]
    if not fractions or any(not 0.0 <= p <= 1.0 for p in fractions):
        raise ValueError(f"fractions must be shares in [0, 1], got {fractions}.")
    order = text_removal_order(inputs, rows, seed)
    test_labels = labels[rows.to(labels.device)]
    clean, test_labels = _check(model.encode(inputs, rows), test_labels)
    database = HuseModel.fused(clean)
    method = _method(clean, classifier, knn_reference)
    ref = _reference(knn_reference, clean) if method == "knn" else None
    records = []
    for p in fractions:
        removed = order[: int(round(p * order.numel()))]
        mask = inputs.mask("text").clone()
        mask[removed] = False
        out, _ = _check(model.encode(dataclasses.replace(inputs, text_mask=mask), rows), test_labels)
        s = _retrieval_row(HuseModel.fused(out), test_labels, database, test_labels, (1,), same_rows=True)
        records.append({"fraction": p, "n_removed": int(removed.numel()), "map_at_r": s["map_at_r"],
                        "accuracy": _fusion(out, test_labels, method, ref, k)[0],
                        "n_queries": s["n_queries"]})  # fmt: skip
    columns = ["fraction", "n_removed", "map_at_r", "accuracy", "n_queries"]
    return pd.DataFrame.from_records(records, columns=columns)


# ----------------------------------------------------------------------------------------- 5. one run
def evaluate_huse(
    model: Encodes,
    inputs: ModalityInputs,
    labels: Tensor,
    test_idx: Tensor,
    hierarchy: ClassHierarchy,
    *,
    train_idx: Tensor | None = None,
    retrieval_ks: Sequence[int] = (1, 5, 10),
    hp_ks: Sequence[int] = (2, 5, 10),
    classifier: Classifier = "auto",
    k: int = KNN_K,
) -> dict[str, Any]:
    r"""The test scores of one trained model: :func:`classification_scores`, :func:`retrieval_matrix` and
    :func:`hierarchical_scores` of ``model.encode(inputs, test_idx)``.

    Args:
        model: Anything with ``encode(inputs, index) -> HuseOutput``.
        inputs: All rows' inputs.
        labels: :math:`(N,)` classes of all rows.
        test_idx: The scored rows.
        hierarchy: The class tree of HP@K.
        train_idx: Training rows: the k-NN reference when the output has no logits (or ``classifier="knn"``).
        retrieval_ks / hp_ks: The K of Recall@K and of HP@K.
        classifier / k: As in :func:`classification_scores`.

    Returns:
        A JSON-serialisable dict: ``n_test``, ``classifier``, the keys of :func:`classification_scores` and
        :func:`hierarchical_scores`, ``<metric>_<query>_to_<database>`` for every metric and row of the
        retrieval matrix (e.g. ``map_at_r_text_to_tabular``, ``r@1_fused_to_fused``), and ``retrieval``: the
        matrix as a list of records.
    """
    out, test_labels = _check(model.encode(inputs, test_idx), labels[test_idx.to(labels.device)])
    reference = None
    if classifier == "knn" or (classifier == "auto" and not _has_head(out)):
        if train_idx is None:
            raise ValueError("The output has no class head (logits) for every modality: pass train_idx, "
                             "whose rows the k-NN vote classifies the test rows from.")  # fmt: skip
        reference = (model.encode(inputs, train_idx), labels[train_idx.to(labels.device)])
    cls = classification_scores(out, test_labels, knn_reference=reference, classifier=classifier, k=k)
    matrix = retrieval_matrix(out, test_labels, retrieval_ks)
    result: dict[str, Any] = {"n_test": int(test_labels.numel()), **cls,
                              **hierarchical_scores(out, test_labels, hierarchy, hp_ks)}  # fmt: skip
    metrics = [c for c in matrix.columns if c not in ("query", "database")]
    for rec in matrix.to_dict("records"):
        for metric in metrics:
            value = rec[metric]
            result[f"{metric}_{rec['query']}_to_{rec['database']}"] = (int(value) if metric == "n_queries"
                                                                       else float(value))  # fmt: skip
    result["retrieval"] = [{key: (v if isinstance(v, str) else int(v) if key == "n_queries" else float(v))
                            for key, v in rec.items()} for rec in matrix.to_dict("records")]  # fmt: skip
    return result
