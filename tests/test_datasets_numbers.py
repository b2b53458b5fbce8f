"""The datasets section's numbers: closed-form values on a small summary frame."""

import pandas as pd
import pytest

from mmsheaf.datasets.numbers import dataset_numbers


def graphs() -> pd.DataFrame:
    return pd.DataFrame({
        "name": ["cora", "texas", "cornell-nsd"], "dataset": ["Cora", "Texas", "Cornell (NSD)"],
        "edge_homophily": [0.81, 0.06, 0.30], "node_homophily": [0.83, 0.11, 0.40],
        "mean_degree": [3.9, 1.8, 2.1234],
    })  # fmt: skip


def tables() -> pd.DataFrame:
    return pd.DataFrame({"name": ["clothing"], "rows": [23486], "missing_text_rows": [845],
                         "missing_title_rows": [3810], "classes": [20], "entities": [1206]})  # fmt: skip


def test_dataset_numbers_closed_form() -> None:
    got = dataset_numbers(graphs(), tables(), {"pubmed": "missing ind.pubmed.allx"}, threshold=0.5)
    assert got["DsNumGraphs"] == "3" and got["DsNumHeterophilic"] == "2"
    assert got["DsHeterophilyThreshold"] == "0.5"
    assert (got["DsMostHeterophilic"], got["DsMostHeterophilicH"]) == ("Texas", "0.06")
    assert (got["DsMostHomophilic"], got["DsMostHomophilicH"]) == ("Cora", "0.81")
    assert (got["DsLargestGap"], got["DsLargestGapValue"]) == ("Cornell (NSD)", "0.10")
    assert (got["DsDensest"], got["DsDensestDegree"]) == ("Cora", "3.9")
    assert got["DsCornellNsdH"] == "0.30" and got["DsCornellH"] == "--"  # the corrected file is not in the frame
    assert got["DsMissing"] == "pubmed (missing ind.pubmed.allx)"
    assert got["DsClothingRows"] == "23{,}486" and got["DsClothingItems"] == "1{,}206"


def test_missing_tables_and_bad_frames() -> None:
    got = dataset_numbers(graphs(), pd.DataFrame({"name": []}), {}, threshold=0.5)
    assert got["DsClothingRows"] == "--" and got["DsMissing"] == "none"
    with pytest.raises(ValueError, match="node_summary"):
        dataset_numbers(graphs().drop(columns="mean_degree"), tables(), {}, threshold=0.5)
