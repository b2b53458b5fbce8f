"""Tests of the MovieLens-1M cold-start loader (mmsheaf.data.movielens1m), on copies of the real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmsheaf.data import DatasetValidationError, RawFileMismatchError, fill_data_root
from mmsheaf.data.movielens1m import ML1M_COLD_COUNTS, load_ml1m_coldstart, normalise_title


def test_normalise_title_drops_alternative_titles_accents_and_articles() -> None:
    assert normalise_title("City of Lost Children, The (Cité des enfants perdus, La) (1995)") == (
        "city of lost children", "1995")  # fmt: skip
    assert normalise_title("Misérables, Les (1995)") == ("miserables", "1995")
    assert normalise_title("The Postman (1997)") == normalise_title("Postman, The (1997)")
    assert normalise_title("Untitled") == ("untitled", "")


@pytest.fixture(scope="module")
def ml1m_root(data_mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ml1m")
    fill_data_root(data_mirror, root, only=["MovieLens1M_coldstart"])
    return root


@pytest.mark.data
def test_sizes_disjoint_cold_items_and_the_pinned_title_join(ml1m_root: Path) -> None:
    d = load_ml1m_coldstart(ml1m_root)
    for name, df in (("train", d.train), ("val", d.val), ("test", d.test)):
        assert (df["iid"].nunique(), len(df)) == ML1M_COLD_COUNTS[name]
    assert not set(d.val["iid"]) & set(d.train["iid"]) and not set(d.test["iid"]) & set(d.val["iid"])
    assert not set(d.test["iid"]) & set(d.train["iid"])
    assert len(d.items) == 3018 and d.items["iid"].tolist() == list(range(3018))
    # how many of the 3,018 items each step joins to an ML-1M movie id (pinned: a change is a decision)
    assert d.coverage == {"exact": 2705, "normalised": 160, "title ±1 year": 71, "none": 82, "with_plot": 2933}
    joined = d.items["ml1m_id"].dropna()
    assert not joined.duplicated().any()  # no movie is given to two items
    # an item without a plot has a really missing text modality
    assert not d.items.loc[d.items["match"] == "none", "has_text"].any()
    assert d.items.loc[d.items["title"] == "Toy Story (1995)", "plot"].str.startswith("A little boy").all()


@pytest.mark.data
def test_a_truncated_split_is_refused(ml1m_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "data"
    fill_data_root(ml1m_root, root)
    test = root / "MovieLens1M_coldstart/raw/cold_test_df.csv"
    text = test.read_text()
    test.write_text(text[: len(text) // 2].rsplit("\n", 1)[0] + "\n")
    with pytest.raises(RawFileMismatchError, match="cold_test_df.csv"):
        load_ml1m_coldstart(root)
    monkeypatch.setenv("MMSHEAF_CHECK_HASHES", "0")
    with pytest.raises(DatasetValidationError, match=r"the test split has 905 items and 1\d\d,\d{3} interactions, the benchmark 905 and 296,870") as info:
        load_ml1m_coldstart(root)
    assert str(test) in str(info.value)
