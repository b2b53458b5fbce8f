"""Tests of mmsheaf.huse.hierarchy: building the class tree from a table, its texts and semantic distances,
and hierarchical precision HP@K on a hand-computed case."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from mmsheaf.data.clothing import HIERARCHY_COLUMNS
from mmsheaf.data.tables import CLOTHING_FILE
from mmsheaf.huse.hierarchy import ClassHierarchy, hierarchical_precision
from torch import Tensor

# Women: Tops {Blouses, Knits}, Bottoms {Jeans}; Intimates: Intimate {Sleep}. Rows repeat and are unsorted.
TABLE = [
    ("Women", "Tops", "Knits"),
    ("Women", "Tops", "Blouses"),
    ("Women", "Bottoms", "Jeans"),
    ("Intimates", "Intimate", "Sleep"),
    ("Women", "Tops", "Knits"),
]
BLOUSES, JEANS, KNITS, SLEEP = 0, 1, 2, 3


@pytest.fixture
def tree() -> ClassHierarchy:
    return ClassHierarchy.from_table(TABLE)


# --------------------------------------------------------------------------------------------- building
def test_hierarchy_from_a_table_orders_names_and_links_parents(tree: ClassHierarchy) -> None:
    assert tree.classes == ("Blouses", "Jeans", "Knits", "Sleep")  # sorted: the data module's label order
    assert tree.names == (("Intimates", "Women"), ("Bottoms", "Intimate", "Tops"), tree.classes)
    assert tree.parents == ((1, 0, 1), (2, 0, 2, 1))  # department -> division, class -> department
    assert tree.level_names == ("division", "department", "class") and tree.num_levels == 3
    assert tree.ancestors().tolist() == [[1, 2, 0], [1, 0, 1], [1, 2, 2], [0, 1, 3]]
    assert tree.group_sizes().tolist() == [[3, 2, 1], [3, 1, 1], [3, 2, 1], [1, 1, 1]]
    assert tree.class_texts() == (
        "Blouses, department Tops, division Women",
        "Jeans, department Bottoms, division Women",
        "Knits, department Tops, division Women",
        "Sleep, department Intimate, division Intimates",
    )


def test_a_data_frame_and_a_given_class_order_give_the_same_tree_in_that_order() -> None:
    df = pd.DataFrame(TABLE + [("Women", "Tops", "Tees")], columns=list(HIERARCHY_COLUMNS))
    tree = ClassHierarchy.from_table(df, classes=["Sleep", "Knits", "Blouses", "Jeans"])  # "Tees" is dropped
    assert tree.classes == ("Sleep", "Knits", "Blouses", "Jeans")
    assert tree.class_texts()[1] == "Knits, department Tops, division Women"
    assert tree.names[1] == ("Bottoms", "Intimate", "Tops")
    with pytest.raises(ValueError, match="not in the table: \\['Shoes'\\]"):
        ClassHierarchy.from_table(df, classes=["Sleep", "Shoes"])


def test_a_class_under_two_departments_is_an_error_unless_the_majority_is_asked_for() -> None:
    rows = [*TABLE, ("Women", "Bottoms", "Knits")]
    with pytest.raises(ValueError, match="class 'Knits' is listed under 2 departments.*parents='majority'"):
        ClassHierarchy.from_table(rows)
    tree = ClassHierarchy.from_table(rows, parents="majority")  # Tops 2, Bottoms 1
    assert tree.class_texts()[KNITS] == "Knits, department Tops, division Women"
    tie = ClassHierarchy.from_table([("W", "Tops", "Knits"), ("W", "Bottoms", "Knits")], parents="majority")
    assert tree.names[1][tree.parents[1][KNITS]] == "Tops" and tie.names[1] == ("Bottoms",)  # ties: first name


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ([], "no rows"),
        (pd.DataFrame(columns=list(HIERARCHY_COLUMNS)), "no rows"),
        ([("Women", None, "Knits")], "missing name.*dropna"),
        ([("Women", "Knits")], "not 3 names"),
        (pd.DataFrame({"Class Name": ["Knits"]}), "lacks the columns"),
    ],
)
def test_bad_tables_raise_and_say_what_to_do(rows: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ClassHierarchy.from_table(rows)  # type: ignore[arg-type]


def test_semantic_distance_is_the_cosine_distance_of_the_class_embeddings(tree: ClassHierarchy) -> None:
    emb = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [-3.0, 0.0]])
    a = tree.semantic_distance(emb)
    s = 1 / math.sqrt(2)
    assert torch.allclose(a[0], torch.tensor([0.0, 1.0, 1 - s, 2.0]))
    assert torch.equal(a, a.T) and torch.equal(a.diagonal(), torch.zeros(4))
    with pytest.raises(ValueError, match="class_texts"):
        tree.semantic_distance(emb[:3])


# ----------------------------------------------------------------------------------- hierarchical precision
def test_ground_truth_sets_grow_up_the_hierarchy_until_they_hold_k_classes(tree: ClassHierarchy) -> None:
    assert torch.equal(tree.relevant_classes(1), torch.eye(4, dtype=torch.bool))
    as_sets = [set(torch.nonzero(row).flatten().tolist()) for row in tree.relevant_classes(2)]
    women, everything = {BLOUSES, JEANS, KNITS}, {0, 1, 2, 3}
    assert as_sets == [{BLOUSES, KNITS}, women, {BLOUSES, KNITS}, everything]  # Tops; Bottoms has one class
    as_sets = [set(torch.nonzero(row).flatten().tolist()) for row in tree.relevant_classes(3)]
    assert as_sets == [women, women, women, everything]
    assert tree.relevant_classes(4).all()


def _points() -> tuple[Tensor, Tensor]:
    """Unit vectors at 0, 10, 25, 45 and 100 degrees: Blouses, Knits, Jeans, Sleep, Blouses. Neighbours (self
    excluded): p0 -> p1 p2 p3, p1 -> p0 p2 p3, p2 -> p1 p3 p0, p3 -> p2 p1 p0, p4 -> p3 p2 p1."""
    angles = torch.tensor([0.0, 10.0, 25.0, 45.0, 100.0]) * math.pi / 180
    labels = torch.tensor([BLOUSES, KNITS, JEANS, SLEEP, BLOUSES])
    return torch.stack([angles.cos(), angles.sin()], dim=1), labels


def test_hierarchical_precision_hand_computed_with_self_excluded(tree: ClassHierarchy) -> None:
    """HP@2 per query: 1/2 (Knits in Tops, Jeans not), 1/2, 1/2 (Jeans' set is the division), 1 (Sleep's set
    is every class), 0 (Sleep, Jeans for a Blouses query) -> 0.5. HP@3 (sets = division Women, or all):
    2/3, 2/3, 2/3, 1, 2/3 -> 11/15. HP@1 is P@1: no query's nearest neighbour has its class."""
    x, y = _points()
    hp = hierarchical_precision(x, y, x, y, tree, ks=(1, 2, 3), per_level=True)
    assert hp["hp_at_1"] == pytest.approx(0.0)
    assert hp["hp_at_2"] == pytest.approx(0.5)
    assert hp["hp_at_3"] == pytest.approx(11 / 15)
    # the share of the top 2 sharing the query's class / department / division
    assert hp["p_at_2_class"] == pytest.approx(0.0)
    assert hp["p_at_2_department"] == pytest.approx(1 / 5)
    assert hp["p_at_2_division"] == pytest.approx(3 / 5)
    per_query = hierarchical_precision(x, y, x, y, tree, ks=(2,), per_query=True)["hp_at_2"]
    assert torch.allclose(per_query, torch.tensor([0.5, 0.5, 0.5, 1.0, 0.0]))


def test_exclude_self_is_detected_and_including_self_changes_the_values(tree: ClassHierarchy) -> None:
    """Each query first retrieves itself when self is kept: HP@2 = (1 + 1 + 1 + 1 + 1/2)/5 = 0.9 and
    HP@3 = (1 + 1 + 2/3 + 1 + 2/3)/5 = 13/15."""
    x, y = _points()
    excluded = {"hp_at_2": 0.5, "hp_at_3": 11 / 15}
    assert hierarchical_precision(x, y, x, y, tree, ks=(2, 3)) == pytest.approx(excluded)  # same tensor
    assert hierarchical_precision(x.clone(), y, x, y.clone(), tree, ks=(2, 3)) == pytest.approx(excluded)
    assert hierarchical_precision(x, y, x, y, tree, ks=(2, 3), exclude_self=True) == pytest.approx(excluded)
    kept = hierarchical_precision(x, y, x, y, tree, ks=(2, 3), exclude_self=False)
    assert kept == pytest.approx({"hp_at_2": 0.9, "hp_at_3": 13 / 15})


def test_a_separate_query_set_searches_the_whole_database_in_blocks(tree: ClassHierarchy) -> None:
    """A Knits query at 50 degrees: neighbours Sleep (5), Jeans (25), Knits (40): HP@2 = 0, HP@3 = 2/3."""
    x, y = _points()
    q = torch.tensor([[math.cos(50 * math.pi / 180), math.sin(50 * math.pi / 180)]])
    hp = hierarchical_precision(q, torch.tensor([KNITS]), x, y, tree, ks=(2, 3))
    assert hp == pytest.approx({"hp_at_2": 0.0, "hp_at_3": 2 / 3})
    whole = hierarchical_precision(x, y, x, y, tree, ks=(2, 3), per_query=True)
    blocks = hierarchical_precision(x, y, x, y, tree, ks=(2, 3), per_query=True, batch_size=2)
    assert all(torch.equal(whole[k], blocks[k]) for k in whole)


def test_hierarchical_precision_rejects_bad_arguments(tree: ClassHierarchy) -> None:
    x, y = _points()
    with pytest.raises(ValueError, match="lower ks"):
        hierarchical_precision(x, y, x, y, tree, ks=(5,))  # 4 rows left once self is excluded
    with pytest.raises(ValueError, match="same number of rows"):
        hierarchical_precision(x[:2], y[:2], x, y, tree, exclude_self=True)
    with pytest.raises(ValueError, match="task's label names"):
        hierarchical_precision(x, y + 1, x, y, tree, ks=(2,))
    with pytest.raises(ValueError, match=">= 1"):
        hierarchical_precision(x, y, x, y, tree, ks=(0,))


@pytest.mark.data
def test_the_clothing_table_needs_the_majority_rule_and_gives_a_three_level_tree(data_mirror: Path) -> None:
    df = pd.read_csv(data_mirror / CLOTHING_FILE, usecols=list(HIERARCHY_COLUMNS)).dropna()
    with pytest.raises(ValueError, match="listed under 2 divisions"):  # General and General Petite
        ClassHierarchy.from_table(df)
    tree = ClassHierarchy.from_table(df, parents="majority")
    assert [len(n) for n in tree.names] == [2, 6, 20]
    assert tree.class_texts()[tree.classes.index("Dresses")] == "Dresses, department Dresses, division General"
