"""Splits are seeded partitions with the asked proportions (per stratum too); rebalance equalises counts."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from evalhub.datasets.curation import rebalance, split
from evalhub.datasets.ingest import Example


def make(n: int, cats: list[tuple[str, int]] | None = None, seed: int = 0, words: int = 12) -> list[Example]:
    """n rows with distinct random prompts; `cats` gives (category, count) in order."""
    rng = random.Random(seed)
    labels = [c for c, k in cats for _ in range(k)] if cats else [""] * n
    return [
        Example(
            " ".join(f"w{rng.randrange(10**6)}" for _ in range(words)),
            None,
            "ref",
            None,
            {"category": labels[i]} if labels[i] else {},
            i + 1,
            None,
        )
        for i in range(n)
    ]


def assert_partition(parts: dict[str, list[int]], n: int) -> None:
    every = [i for p in parts.values() for i in p]
    assert sorted(every) == list(range(n))


def test_counts_follow_fractions_and_cover_every_row() -> None:
    parts = split(1000, seed=1)
    assert list(parts) == ["train", "validation", "eval"]
    assert [len(p) for p in parts.values()] == [800, 100, 100]
    assert_partition(parts, 1000)


def test_same_seed_same_split_other_seed_other_split() -> None:
    rows = make(200)
    assert split(rows, seed=7) == split(rows, seed=7)
    assert split(rows, seed=7)["eval"] != split(rows, seed=8)["eval"]
    assert split(200, seed=3) == split(200, seed=3)


def test_stratified_split_keeps_each_category_share() -> None:
    rows = make(1000, [("furniture", 600), ("kitchen", 300), ("garden", 100)])
    parts = split(rows, seed=2, stratify_by="category", fractions={"train": 0.7, "eval": 0.3})
    assert_partition(parts, 1000)
    eval_cats = Counter(rows[i].attributes["category"] for i in parts["eval"])
    assert eval_cats == {"furniture": 180, "kitchen": 90, "garden": 30}


def test_many_small_strata_still_hit_the_totals_and_fill_every_split() -> None:
    cats = [(f"c{k}", 7) for k in range(10)]
    rows = make(70, cats)
    parts = split(rows, seed=0, stratify_by="category")
    assert [len(p) for p in parts.values()] == [56, 7, 7]
    for p in parts.values():
        # within a stratum no split is more than one row off its share
        per_cat = Counter(rows[i].attributes["category"] for i in p)
        share = len(p) / 70
        assert all(abs(per_cat.get(c, 0) - 7 * share) <= 1 for c, _ in cats)


@pytest.mark.parametrize("n", [3, 4, 5, 9])
def test_tiny_datasets_get_every_split_non_empty(n: int) -> None:
    parts = split(n, seed=0)
    assert all(parts.values())
    assert_partition(parts, n)


def test_fewer_rows_than_splits_does_not_fail() -> None:
    parts = split(2, seed=0)
    assert sorted(len(p) for p in parts.values()) == [0, 1, 1]
    assert split(0, seed=0) == {"train": [], "validation": [], "eval": []}


def test_zero_fraction_split_stays_empty() -> None:
    parts = split(50, seed=0, fractions={"train": 0.9, "validation": 0.0, "eval": 0.1})
    assert parts["validation"] == []
    assert (len(parts["train"]), len(parts["eval"])) == (45, 5)


def test_duplicate_prompts_stay_in_one_split() -> None:
    rows = make(300, seed=4, words=24)
    groups = []
    for src in range(
        0, 60, 6
    ):  # 10 groups: an exact copy and a two-word variant (Jaccard 22/26) of one prompt
        words = (rows[src].prompt or "").split()
        variant = " ".join(["x1", "x2", *words[2:]])
        rows.append(
            Example(rows[src].prompt.upper() if rows[src].prompt else "", None, "r", None, {}, 0, None)
        )
        rows.append(Example(variant, None, "r", None, {}, 0, None))
        groups.append({src, len(rows) - 2, len(rows) - 1})
    for seed in range(5):
        parts = split(rows, seed=seed)
        where = {i: name for name, p in parts.items() for i in p}
        for g in groups:
            assert len({where[i] for i in g}) == 1, (seed, g)
        without = split(rows, seed=seed, group_duplicates=False)
        assert [len(p) for p in without.values()] == [256, 32, 32]


def test_stratify_by_label() -> None:
    rows = [
        Example(f"prompt {i} words here", None, None, "pos" if i < 80 else "neg", {}, i, None)
        for i in range(100)
    ]
    parts = split(rows, seed=0, stratify_by="label", fractions={"train": 0.5, "eval": 0.5})
    assert Counter(rows[i].label for i in parts["eval"]) == {"pos": 40, "neg": 10}


@pytest.mark.parametrize(
    "fractions",
    [{"train": 0.8, "eval": 0.1}, {"train": 1.2, "eval": -0.2}, {}, {"train": float("nan"), "eval": 1.0}],
)
def test_bad_fractions_are_refused(fractions: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        split(10, seed=0, fractions=fractions)


def test_stratify_needs_examples_and_a_known_attribute() -> None:
    with pytest.raises(ValueError):
        split(10, seed=0, stratify_by="category")
    with pytest.raises(ValueError, match="no example has"):
        split(make(10), seed=0, stratify_by="colour")


# ---- rebalance ---------------------------------------------------------------------------------------------

CATS = [("furniture", 50), ("kitchen", 20), ("garden", 7)]


def test_down_sampling_equalises_to_the_rarest_value() -> None:
    rows = make(77, CATS)
    picked = rebalance(rows, attribute="category", mode="down", seed=1)
    assert Counter(rows[i].attributes["category"] for i in picked) == {
        "furniture": 7,
        "kitchen": 7,
        "garden": 7,
    }
    assert len(set(picked)) == len(picked)
    assert picked == rebalance(rows, attribute="category", mode="down", seed=1)
    assert picked != rebalance(rows, attribute="category", mode="down", seed=2)


def test_up_sampling_keeps_every_row_and_repeats_evenly() -> None:
    rows = make(77, CATS)
    picked = rebalance(rows, attribute="category", mode="up", seed=1)
    assert Counter(rows[i].attributes["category"] for i in picked) == {
        "furniture": 50,
        "kitchen": 50,
        "garden": 50,
    }
    assert set(picked) == set(range(77))
    copies = Counter(picked)
    garden = [copies[i] for i in range(70, 77)]
    assert max(garden) - min(garden) <= 1  # 50 = 7 x 7 + 1: one garden row appears 8 times, the others 7
    assert all(copies[i] == 1 for i in range(50))


def test_rows_without_the_attribute_are_left_out() -> None:
    rows = make(25, [("a", 10), ("b", 15)]) + make(5, seed=9)
    picked = rebalance(rows, attribute="category", mode="down", seed=0)
    assert len(picked) == 20 and max(picked) < 25


def test_unknown_mode_or_attribute_is_refused() -> None:
    rows = make(10, [("a", 5), ("b", 5)])
    with pytest.raises(ValueError):
        rebalance(rows, attribute="category", mode="sideways", seed=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        rebalance(rows, attribute="colour", seed=0)
