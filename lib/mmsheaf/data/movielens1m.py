r"""MovieLens-1M item cold start with IMDb side information: the raw tables, checked, and the title join.

The public ML-1M cold-start benchmark (as packaged by ``recohut/coldstart-recsys``, the split used by
DropoutNet/Heater-style code): users and items re-indexed from 0, implicit interactions, and three **disjoint**
item sets: warm items (``train_df.csv``), cold validation items (``cold_vali_df.csv``) and cold test items
(``cold_test_df.csv``). Item content comes from MeLU's side information (Lee et al., KDD 2019):
``movies.dat`` maps ML-1M movie ids to titles, ``movies_extrainfos.dat`` gives per movie id the year, MPAA
rating, genres, director, writers, actors and an IMDb **plot**.

The benchmark's ``item_df.csv`` titles follow MovieLens-latest (years and alternative titles sometimes differ
from ML-1M's), so items are joined to ML-1M ids by :func:`normalise_title` (lower case, accents and
parenthesised alternative titles removed, a trailing article dropped, year kept), then, for the rest, by the
normalised title alone when exactly one ML-1M movie has it within a year. :func:`load_ml1m_coldstart` reports
how many items each step joined; an item left without a plot has a really missing text modality.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mmsheaf import paths
from mmsheaf.data.errors import DatasetNotFoundError, missing_files, not_found_message
from mmsheaf.data.integrity import verify_known_files
from mmsheaf.data.validate import invalid

__all__ = ["ML1M_COLD_COUNTS", "ML1M_COLD_FILES", "ML1MColdStart", "join_side_information", "load_ml1m_coldstart",
           "normalise_title"]

ML1M_COLD_DIR = "MovieLens1M_coldstart/raw"
ML1M_COLD_FILES = tuple(f"{ML1M_COLD_DIR}/{f}" for f in ("train_df.csv", "cold_vali_df.csv", "cold_test_df.csv",
                                                          "item_df.csv", "movies.dat", "movies_extrainfos.dat"))  # fmt: skip
ML1M_COLD_COUNTS = {
    "users": 6018, "items": 3018,
    "train": (1811, 529_952), "val": (302, 106_695), "test": (905, 296_870),
}  # fmt: skip
"""The benchmark's sizes (the data README): users, items, and (items, interactions) per split."""

EXTRA_FIELDS = ("ml1m_id", "imdb_title", "year", "mpaa", "released", "imdb_genres", "director", "writers",
                "actors", "plot", "poster")  # fmt: skip
_ARTICLE = re.compile(r",\s*(the|a|an|la|le|les|l'|il|el|das|der|die)\s*$")


def normalise_title(title: str) -> tuple[str, str]:
    """``(normalised title, year)``: ASCII lower case, parenthesised alternative titles removed, a trailing or
    leading article dropped, punctuation collapsed; the year is the last ``(dddd)``.

    ``"City of Lost Children, The (Cité des enfants perdus, La) (1995)"`` -> ``("city of lost children", "1995")``.
    """
    t = unicodedata.normalize("NFKD", str(title)).encode("ascii", "ignore").decode().lower()
    year = m.group(1) if (m := re.search(r"\((\d{4})\)\s*$", t)) else ""
    t = re.sub(r"\([^)]*\)", " ", t).strip()
    t = _ARTICLE.sub("", t).strip()
    t = re.sub(r"^(the|a|an)\s+", "", t)
    return re.sub(r"[^a-z0-9]+", " ", t).strip(), year


@dataclass(frozen=True)
class ML1MColdStart:
    """The raw benchmark, checked.

    Attributes:
        train / val / test: ``uid, iid`` interactions of the warm items, the cold validation items and the cold
            test items.
        items: One row per item (``iid`` 0 .. 3017): ``title, genres`` of the benchmark, the joined ``ml1m_id``
            (``<NA>`` where no match), how it was joined (``match``: ``"exact"``, ``"normalised"``,
            ``"title ±1 year"`` or ``"none"``), the side information of :data:`EXTRA_FIELDS` and ``has_text``
            (a non-empty plot).
        coverage: Items joined by each step and items with a plot.
    """

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    items: pd.DataFrame
    coverage: dict[str, int]


def _read_extra(path: Path) -> pd.DataFrame:
    rows = []
    for number, line in enumerate(path.read_text(encoding="latin-1").split("\n"), start=1):  # not splitlines: \x85 is text
        if not line.strip():
            continue
        parts = line.rstrip("\r").split("::")
        if len(parts) != len(EXTRA_FIELDS):
            raise invalid("ml1m-coldstart", path, f"line {number} has {len(parts)} '::'-separated fields, "
                          f"expected {len(EXTRA_FIELDS)}")  # fmt: skip
        rows.append(parts)
    extra = pd.DataFrame(rows, columns=list(EXTRA_FIELDS))
    extra["ml1m_id"] = extra["ml1m_id"].astype(int)
    return extra


def _join(items: pd.DataFrame, movies: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    exact = dict(zip(movies["title"], movies["ml1m_id"]))
    normalised = {normalise_title(t): m for t, m in zip(movies["title"], movies["ml1m_id"])}
    by_title: dict[str, list[tuple[int, int]]] = {}
    for (name, year), m in normalised.items():
        by_title.setdefault(name, []).append((int(year) if year else -9999, m))
    ids, how = [], []
    for title in items["title"]:
        name, year = normalise_title(title)
        close = [m for y, m in by_title.get(name, []) if year and abs(y - int(year)) <= 1]
        if title in exact:
            ids.append(exact[title]); how.append("exact")  # noqa: E702
        elif (name, year) in normalised:
            ids.append(normalised[(name, year)]); how.append("normalised")  # noqa: E702
        elif len(close) == 1:
            ids.append(close[0]); how.append("title ±1 year")  # noqa: E702
        else:
            ids.append(None); how.append("none")  # noqa: E702
    return pd.Series(ids, index=items.index, dtype="Int64"), pd.Series(how, index=items.index)


SIDE_FILES = tuple(f"{ML1M_COLD_DIR}/{f}" for f in ("movies.dat", "movies_extrainfos.dat"))


def _read_movies(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "movies.dat", sep="::", engine="python", header=None,
                       names=["ml1m_id", "title", "ml1m_genres"], encoding="latin-1")  # fmt: skip


def join_side_information(titles: pd.Series, root: str | Path | None = None) -> tuple[pd.DataFrame, dict[str, int]]:
    """Join titles with year (``"Toy Story (1995)"``) to MeLU's IMDb side information, as the benchmark's items
    are joined (exact title, then :func:`normalise_title`, then the normalised title within a year).

    Used to give MovieLens-100K movies their plots (the same side information covers most of them).

    Returns:
        ``(rows, coverage)``: one row per title, on the index of ``titles``, with ``ml1m_id``, ``match`` and the
        fields of :data:`EXTRA_FIELDS` (``<NA>`` where nothing was joined) and ``has_text`` (a plot); and the
        number of titles joined by each step and with a plot.
    """
    base = Path(root).expanduser().resolve() if root is not None else paths.data_root()
    if missing := missing_files(base, SIDE_FILES):
        raise DatasetNotFoundError(not_found_message("ml1m-coldstart", base, missing, alternatives=[
            "take MeLU's ml-1m side information (see the project's data README)"]))  # fmt: skip
    verify_known_files(base, SIDE_FILES, dataset="ml1m-coldstart")
    folder = base / ML1M_COLD_DIR
    frame = pd.DataFrame({"title": titles.astype(str).str.strip().to_numpy()})
    frame["ml1m_id"], frame["match"] = _join(frame, _read_movies(folder))
    rows = frame.merge(_read_extra(folder / "movies_extrainfos.dat"), on="ml1m_id", how="left")  # keeps the order
    rows.index = titles.index
    rows["has_text"] = rows["plot"].fillna("").str.strip().ne("") & rows["plot"].ne("N/A")
    coverage = {how: int((rows["match"] == how).sum()) for how in ("exact", "normalised", "title ±1 year", "none")}
    coverage["with_plot"] = int(rows["has_text"].sum())
    return rows, coverage


def load_ml1m_coldstart(root: str | Path | None = None) -> ML1MColdStart:
    """The MovieLens-1M cold-start benchmark with its side information, checked against the data README.

    Raises:
        DatasetNotFoundError: a file is missing.
        RawFileMismatchError: a file differs from its known size and sha256.
        DatasetValidationError: sizes other than :data:`ML1M_COLD_COUNTS`, item sets that overlap across the
            splits, ids out of range, or a side-information line that does not parse.
    """
    base = Path(root).expanduser().resolve() if root is not None else paths.data_root()
    if missing := missing_files(base, ML1M_COLD_FILES):
        raise DatasetNotFoundError(not_found_message("ml1m-coldstart", base, missing, alternatives=[
            "take data/ml-1m.zip of the GitHub repository recohut/coldstart-recsys and MeLU's ml-1m side "
            "information (see the project's data README)"]))  # fmt: skip
    verify_known_files(base, ML1M_COLD_FILES, dataset="ml1m-coldstart")
    folder = base / ML1M_COLD_DIR
    files = {"train": "train_df.csv", "val": "cold_vali_df.csv", "test": "cold_test_df.csv"}
    splits = {s: pd.read_csv(folder / f) for s, f in files.items()}
    items = pd.read_csv(folder / "item_df.csv").sort_values("iid").reset_index(drop=True)
    counts = ML1M_COLD_COUNTS
    for name, df in splits.items():
        found = (df["iid"].nunique(), len(df))
        if found != counts[name]:
            raise invalid("ml1m-coldstart", folder / files[name], f"the {name} split has {found[0]:,} items and "
                          f"{found[1]:,} interactions, the benchmark {counts[name][0]:,} and {counts[name][1]:,}")  # fmt: skip
    sets = {name: set(df["iid"]) for name, df in splits.items()}
    if sets["train"] & sets["val"] or sets["train"] & sets["test"] or sets["val"] & sets["test"]:
        raise invalid("ml1m-coldstart", folder, "the warm, cold validation and cold test item sets overlap")
    users = pd.concat([df["uid"] for df in splits.values()])
    if users.nunique() != counts["users"] or users.min() < 0 or users.max() >= counts["users"]:
        raise invalid("ml1m-coldstart", folder, f"user ids: {users.nunique():,} users from {users.min()} to "
                      f"{users.max()}, expected {counts['users']:,} numbered from 0")  # fmt: skip
    if len(items) != counts["items"] or items["iid"].tolist() != list(range(counts["items"])):
        raise invalid("ml1m-coldstart", folder / "item_df.csv", f"{len(items):,} items, expected ids 0 .. "
                      f"{counts['items'] - 1}")  # fmt: skip
    movies = _read_movies(folder)
    items["ml1m_id"], items["match"] = _join(items, movies)
    extra = _read_extra(folder / "movies_extrainfos.dat")
    items = items.merge(extra, on="ml1m_id", how="left")
    items["has_text"] = items["plot"].fillna("").str.strip().ne("") & items["plot"].ne("N/A")
    coverage = {how: int((items["match"] == how).sum()) for how in ("exact", "normalised", "title ±1 year", "none")}
    coverage["with_plot"] = int(items["has_text"].sum())
    return ML1MColdStart(splits["train"], splits["val"], splits["test"], items, coverage)
