"""Structural checks of every loaded dataset, whatever its source, and locating a raw line that cannot parse.

A raw file can be wrong in ways its loader does not notice: a feature file cut mid-line loads as a graph
with features for half its nodes, a truncated ``u.data`` as fewer ratings. The loaders of
:mod:`mmsheaf.data` run these checks on what they loaded (vectorised; a few milliseconds on the largest
dataset) and raise :class:`~mmsheaf.data.errors.DatasetValidationError`, whose message names the dataset,
the file the check points to and the check, with how to restore the file.

Checks:

- graphs (:func:`validate_node_graph`): a 2-D feature matrix with one row per node, at least one node and one
  feature, finite values; labels one per node, in ``0 .. classes - 1``; edge indices in ``0 .. N - 1``;
  split masks of shape ``(N, splits)``, with train, validation and test disjoint and non-empty in each split;
- MovieLens 100K (:func:`validate_movielens100k`): integer ids and ratings 1-5; as many users, items and
  ratings as ``u.info`` says; user and item ids ``1 .. U`` / ``1 .. I``, each once in ``u.user`` / ``u.item``;
- tables (:func:`validate_table`): the expected columns, integer ids without gaps, values in their range;
- images (:func:`validate_images`): rows of the expected width, pixel values and labels in range.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import Data

from mmsheaf.data.errors import RESTORE_HINT, DatasetValidationError

__all__ = [
    "first_unparsable_line",
    "invalid",
    "read_u_info",
    "validate_images",
    "validate_movielens100k",
    "validate_node_graph",
    "validate_table",
]

RESTORE = f"If it is a file of the project's mirror, restore it: {RESTORE_HINT}."


def invalid(dataset: str, files: Path | Sequence[Path], check: str) -> DatasetValidationError:
    """The error of a failed check: ``Dataset 'name': <check>`` with the file(s) and how to restore them."""
    listed = [files] if isinstance(files, Path) else list(files)
    where = "\n".join(f"    {path}" for path in listed)
    return DatasetValidationError(f"Dataset {dataset!r}: {check}\nFile(s):\n{where}\n{RESTORE}")


# ------------------------------------------------------------------------------------------------------------
# Graphs
# ------------------------------------------------------------------------------------------------------------


def validate_node_graph(
    data: Data, dataset: str, files: Mapping[str, Sequence[Path]], *, classes: int | None = None
) -> None:
    r"""Check a node-classification graph against its raw files' roles.

    Args:
        data: The loaded graph (``x``, ``y``, ``edge_index`` and optional ``train/val/test_mask``).
        dataset: Its name, for messages.
        files: The raw files by role: ``"features"``, ``"labels"``, ``"edges"``, ``"splits"`` (a role may be
            absent; messages then name no file for it).
        classes: The dataset's number of classes, when known (labels must be below it).

    Raises:
        DatasetValidationError: the first failed check, naming ``dataset``, the file of the role and the check.
    """
    feat, lab = list(files.get("features", ())), list(files.get("labels", ()))
    edges, splits = list(files.get("edges", ())), list(files.get("splits", ()))
    x, y, edge_index = data.x, data.y, data.edge_index
    if x is None or x.dim() != 2 or x.size(0) == 0 or x.size(1) == 0:
        shape = None if x is None else tuple(x.shape)
        raise invalid(dataset, feat, f"the feature matrix has shape {shape}, not (nodes, features) with "
                      "at least one of each: the feature file is empty or cut short")
    n = x.size(0)
    # A sum is finite exactly when no entry is NaN or infinite (barring overflow, which the full check then
    # rules out); it needs no N x F mask, which made this check 8x slower on Squirrel (measured).
    if not torch.isfinite(x.sum()) and not torch.isfinite(x).all():
        rows = int((~torch.isfinite(x)).any(dim=1).sum())
        raise invalid(dataset, feat, f"{rows} node(s) have NaN or infinite features")
    if y is None or y.dim() != 1 or y.size(0) != n:
        shape = None if y is None else tuple(y.shape)
        raise invalid(dataset, lab or feat, f"{n} feature rows but labels of shape {shape}: one label per "
                      "node expected")
    if y.numel() and (int(y.min()) < 0 or (classes is not None and int(y.max()) >= classes)):
        bound = f"0 .. {classes - 1}" if classes is not None else "0 or more"
        raise invalid(dataset, lab or feat, f"labels range from {int(y.min())} to {int(y.max())}, expected "
                      f"{bound}")
    if edge_index is None or edge_index.dim() != 2 or edge_index.size(0) != 2:
        shape = None if edge_index is None else tuple(edge_index.shape)
        raise invalid(dataset, edges, f"edge_index has shape {shape}, expected (2, edges)")
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= n):
        raise invalid(
            dataset,
            edges + feat,
            f"edges reach node {int(edge_index.max())} but the features describe {n} nodes (0 .. {n - 1}; "
            f"lowest node of an edge: {int(edge_index.min())}): the feature file or the edge file is cut short "
            "or from another version",
        )
    _validate_masks(data, dataset, n, splits)


def _validate_masks(data: Data, dataset: str, n: int, splits: list[Path]) -> None:
    masks = {key: getattr(data, key, None) for key in ("train_mask", "val_mask", "test_mask")}
    if all(mask is None for mask in masks.values()):
        return
    shapes = {key: tuple(mask.shape) if mask is not None else None for key, mask in masks.items()}
    first = next(iter(shapes.values()))
    if len(set(shapes.values())) != 1 or first is None or first[0] != n:
        raise invalid(dataset, splits, f"split masks of shapes {shapes} for {n} nodes: each mask must have "
                      "one row per node (and the same splits)")
    train, val, test = (masks[key].to(torch.bool).reshape(n, -1) for key in masks)
    overlap = (train & val) | (train & test) | (val & test)
    if overlap.any():
        col = int(overlap.any(dim=0).nonzero()[0])
        raise invalid(dataset, splits, f"split {col}: {int(overlap[:, col].sum())} node(s) are in more than "
                      "one of train / validation / test")
    for name, mask in (("train", train), ("validation", val), ("test", test)):
        empty = (~mask.any(dim=0)).nonzero().flatten().tolist()
        if empty:
            raise invalid(dataset, splits, f"the {name} set of split(s) {empty} is empty")


def first_unparsable_line(path: Path, fields: Sequence[str]) -> str | None:
    """Where a geom-gcn text file (header line, then tab-separated rows) first fails to parse, or None.

    Args:
        path: The file.
        fields: One entry per column: ``"int"``, or ``"numbers"`` (a comma-separated list of numbers).

    Returns:
        ``"line 12: '56\\tx84'"``-style text for the first bad row, or ``None`` when every row parses.
    """
    with path.open(encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            row = line.rstrip("\n")
            if number == 1 or line == row:  # the header, and a last line without a newline (PyG drops it)
                continue
            parts = row.split("\t")
            if len(parts) != len(fields) or not all(map(_parses, parts, fields)):
                shown = row if len(row) <= 80 else row[:77] + "..."
                return f"line {number}: {shown!r} (expected {len(fields)} tab-separated fields: {', '.join(fields)})"
    return None


def _parses(text: str, kind: str) -> bool:
    try:
        if kind == "int":
            int(text)
        else:
            [float(v) for v in text.split(",")]
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------------------------------------------------
# MovieLens 100K
# ------------------------------------------------------------------------------------------------------------


def read_u_info(path: Path, dataset: str = "movielens100k") -> dict[str, int]:
    """``u.info`` (``943 users`` / ``1682 items`` / ``100000 ratings``) as ``{"users", "items", "ratings"}``."""
    counts: dict[str, int] = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit():
            counts[parts[1]] = int(parts[0])
    if set(counts) != {"users", "items", "ratings"}:
        raise invalid(dataset, path, f"u.info should say how many users, items and ratings there are; read "
                      f"{counts}")
    return counts


def _integer_column(frame: pd.DataFrame, column: str, dataset: str, path: Path) -> np.ndarray:
    values = frame[column]
    if not pd.api.types.is_integer_dtype(values):
        numbers = pd.to_numeric(values, errors="coerce")
        bad = frame.index[numbers.isna() | (numbers != numbers.round())]
        first = int(bad[0]) + 1 if len(bad) else "?"
        raise invalid(dataset, path, f"column {column!r} holds non-integer or missing values (first at row "
                      f"{first}): the file has a damaged or cut line")
    return values.to_numpy()


def validate_movielens100k(tables: Mapping[str, pd.DataFrame], folder: Path) -> None:
    """Check the MovieLens 100K tables of :func:`~mmsheaf.data.tables.load_movielens100k` against ``u.info``.

    Args:
        tables: ``{"ratings", "users", "items"}`` as loaded from ``folder``.
        folder: The ``raw/`` folder (for ``u.info`` and the file names in messages).

    Raises:
        DatasetValidationError: the first failed check, naming the file.
    """
    name = "movielens100k"
    info = read_u_info(folder / "u.info")
    u_data, u_user, u_item = folder / "u.data", folder / "u.user", folder / "u.item"
    ratings, users, items = tables["ratings"], tables["users"], tables["items"]
    for column in ("user_id", "item_id", "rating"):
        _integer_column(ratings, column, name, u_data)
    if len(ratings) != info["ratings"]:
        raise invalid(name, [u_data, folder / "u.info"], f"u.data holds {len(ratings):,} ratings but u.info "
                      f"says {info['ratings']:,}: the file is cut short or from another release")
    for table, path, key, count in ((users, u_user, "user_id", "users"), (items, u_item, "item_id", "items")):
        ids = _integer_column(table, key, name, path)
        if len(table) != info[count] or not np.array_equal(np.sort(ids), np.arange(1, info[count] + 1)):
            raise invalid(name, [path, folder / "u.info"], f"{path.name} holds {len(table):,} rows with ids "
                          f"from {ids.min() if len(ids) else None} to {ids.max() if len(ids) else None}; u.info "
                          f"says {info[count]:,} {count} with ids 1 .. {info[count]}, each once")
    for column, count in (("user_id", "users"), ("item_id", "items")):
        values = ratings[column].to_numpy()
        if values.min() < 1 or values.max() > info[count]:
            raise invalid(name, u_data, f"{column} ranges from {values.min()} to {values.max()}, outside "
                          f"1 .. {info[count]} ({count} in u.info)")
    scores = ratings["rating"].to_numpy()
    if scores.min() < 1 or scores.max() > 5:
        raise invalid(name, u_data, f"ratings range from {scores.min()} to {scores.max()}, expected 1 .. 5")


# ------------------------------------------------------------------------------------------------------------
# Tables and images
# ------------------------------------------------------------------------------------------------------------


def validate_table(
    frame: pd.DataFrame,
    dataset: str,
    path: Path,
    *,
    columns: Sequence[str],
    integer: Sequence[str] = (),
    ranges: Mapping[str, tuple[float, float]] | None = None,
) -> None:
    """Check a table: the ``columns`` exist, ``integer`` columns hold integers only, ``ranges`` hold.

    Values missing in a range-checked column are allowed (the loaders keep real missing values).

    Raises:
        DatasetValidationError: the first failed check, naming ``dataset``, ``path`` and the check.
    """
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise invalid(dataset, path, f"columns {absent} are missing (found {list(frame.columns)})")
    for column in integer:
        _integer_column(frame, column, dataset, path)
    for column, (low, high) in (ranges or {}).items():
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.notna() & ((values < low) | (values > high))
        text_bad = values.isna() & frame[column].notna()
        if bad.any() or text_bad.any():
            row = int(frame.index[bad | text_bad][0]) + 1
            raise invalid(dataset, path, f"column {column!r} has values outside {low:g} .. {high:g} (first "
                          f"at row {row}: {frame[column].iloc[row - 1]!r})")


def validate_images(
    images: np.ndarray, labels: np.ndarray, dataset: str, path: Path, *, width: int, classes: int
) -> None:
    """Check flattened images: ``width`` values per row in ``0 .. 255``, finite, labels in ``0 .. classes-1``.

    Raises:
        DatasetValidationError: the first failed check, naming ``dataset``, ``path`` and the check.
    """
    if images.ndim != 2 or images.shape[0] == 0 or images.shape[1] != width:
        raise invalid(dataset, path, f"images of shape {images.shape}, expected (rows, {width})")
    if not (np.issubdtype(images.dtype, np.number) and np.issubdtype(labels.dtype, np.number)):
        raise invalid(dataset, path, "non-numeric values: a row is damaged")
    if not np.isfinite(images).all() or images.min() < 0 or images.max() > 255:
        raise invalid(dataset, path, "pixel values must be finite and within 0 .. 255: a row is damaged")
    if not np.isfinite(labels).all() or labels.min() < 0 or labels.max() >= classes:
        raise invalid(dataset, path, f"labels must be 0 .. {classes - 1}; found {labels.min()} .. {labels.max()}")
