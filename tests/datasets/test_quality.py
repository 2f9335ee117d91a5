"""The quality report finds exactly what was planted in a dataset, and nothing in its clean rows."""

from __future__ import annotations

import itertools
import json
import random
import re

import pytest

from evalhub.datasets.ingest import Example
from evalhub.datasets.quality import duplicate_clusters, normalise_prompt, quality_report

VOCAB = [
    f"{a}{b}"
    for a, b in itertools.product(
        ["oak", "wool", "steel", "linen", "glass", "cedar", "clay", "silk", "brass", "jute", "felt", "cork"],
        [
            "desk",
            "lamp",
            "mug",
            "scarf",
            "stool",
            "tray",
            "vase",
            "rug",
            "bowl",
            "hook",
            "shelf",
            "crate",
            "bench",
            "jar",
            "quilt",
            "kettle",
            "board",
            "basket",
            "frame",
            "clock",
        ],
    )
]  # 240 distinct words


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.sample(VOCAB, n))


def change_words(text: str, k: int, rng: random.Random) -> str:
    ws = text.split()
    fresh = [w for w in VOCAB if w not in ws]
    for pos in rng.sample(range(len(ws)), k):
        ws[pos] = fresh.pop(rng.randrange(len(fresh)))
    return " ".join(ws)


def ex(i: int, prompt: str, reference: str | None, label: str | None = None, **attributes: str) -> Example:
    # source lines as in a CSV with a header, so a report naming indices instead of lines would fail
    return Example(prompt, None, reference, label, dict(attributes), i + 2, f"id{i}")


def clean_rows(n: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    cats = ["furniture", "kitchen", "clothing"]
    return [
        ex(
            i,
            words(rng, rng.randint(22, 28)),
            words(rng, rng.randint(18, 24)),
            "good" if i % 2 else "bad",
            category=cats[i % 3],
        )
        for i in range(n)
    ]


@pytest.fixture
def planted() -> dict[str, object]:
    rng = random.Random(1)
    rows = clean_rows(60, seed=2)
    base = rows[:]
    dup_a = base[3].prompt or ""
    dup_b = base[7].prompt or ""
    near_src = base[11].prompt or ""
    extra = [
        (dup_a.upper(), "exact_a"),
        ("  " + dup_a.replace(" ", "   ") + " ", "exact_a"),
        (dup_b.title(), "exact_b"),
        (change_words(near_src, 2, rng), "near"),
    ]
    for text, _ in extra:
        rows.append(ex(len(rows), text, words(rng, 20), "good", category="furniture"))
    rows[20] = ex(20, rows[20].prompt or "", None, "good", category="kitchen")  # empty reference
    rows[30] = ex(
        30,
        rows[30].prompt or "",
        words(rng, 20) + " " + " ".join(rng.choices(VOCAB, k=400)),
        "good",
        category="furniture",
    )  # length outlier
    rows[40] = ex(40, rows[40].prompt or "", rows[40].reference, "good", category="garden")  # 1 of 64 rows
    # labels: make "good" far more common than "bad" without touching which prompts are duplicates
    for i in range(0, 60, 2):
        if i % 10:
            r = rows[i]
            rows[i] = ex(i, r.prompt or "", r.reference, "good", **r.attributes)
    line = {i: rows[i].source_line for i in range(len(rows))}
    eval_rng = random.Random(3)
    eval_rows = [ex(i, words(eval_rng, 25), words(eval_rng, 20), "good") for i in range(20)]
    eval_rows[4] = ex(4, (rows[50].prompt or "").lower(), "x y z", "good")  # exact leak of row 50
    eval_rows[9] = ex(9, rows[51].prompt or "", "x y z", "good")  # exact leak of row 51
    eval_rows[15] = ex(
        15, change_words(rows[55].prompt or "", 2, eval_rng), "x y z", "good"
    )  # near leak of row 55
    return {"rows": rows, "eval": eval_rows, "line": line}


def test_planted_problems_are_found_and_nothing_else(planted: dict) -> None:
    rows, line = planted["rows"], planted["line"]
    rep = quality_report(rows, compare_to=planted["eval"], seed=0)
    json.dumps(rep)  # JSON-ready

    assert rep["n_rows"] == 64
    exact = rep["exact_duplicates"]
    assert [g["lines"] for g in exact["items"]] == [
        sorted([line[3], line[60], line[61]]),
        [line[7], line[62]],
    ]
    assert (exact["rows"], exact["groups"], exact["redundant"]) == (5, 2, 3)

    near = rep["near_duplicates"]
    assert [g["lines"] for g in near["items"]] == [[line[11], line[63]]]
    assert near["items"][0]["jaccard"]["min"] >= 0.8

    assert rep["fields"]["reference"]["empty"] == {"count": 1, "lines": [line[20]]}
    assert rep["fields"]["reference"]["near_empty"]["count"] == 0
    assert rep["fields"]["prompt"]["empty"]["count"] == rep["fields"]["prompt"]["near_empty"]["count"] == 0

    ref_len = rep["lengths"]["reference"]
    assert ref_len["chars"]["outliers"]["lines"] == [line[30]]
    assert ref_len["words"]["outliers"]["lines"] == [line[30]]
    assert ref_len["chars"]["count"] == 63  # the empty one is reported as empty, not as a length of 0
    assert ref_len["chars"]["histogram"]["above"] == 1
    assert sum(ref_len["chars"]["histogram"]["counts"]) == 62
    assert rep["lengths"]["prompt"]["chars"]["outliers"]["count"] == 0
    assert rep["lengths"]["prompt"]["words"]["outliers"]["count"] == 0

    labels = rep["labels"]
    assert labels["imbalanced"] and labels["majority"] == "good"
    assert labels["counts"]["good"] / labels["counts"]["bad"] == pytest.approx(
        labels["imbalance_ratio"], abs=1e-3
    )

    cov = rep["coverage"]["category"]
    assert cov["under_represented"] == ["garden"]
    assert cov["values"]["garden"]["count"] == 1

    ov = rep["overlap"]
    assert sorted(it["lines"][0] for it in ov["exact"]["items"]) == [line[50], line[51]]
    assert [(it["lines"], it["other_lines"]) for it in ov["near"]["items"]] == [([line[55]], [17])]
    assert ov["leaked_rows"] == 3

    text = " | ".join(rep["findings"])
    for expected in (
        "5 rows are exact duplicate prompts in 2 groups (3 redundant copies)",
        "2 rows are near-duplicate prompts in 1 group",
        "1 row has an empty reference",
        "unusual reference length",
        "labels are imbalanced",
        "category: 1 value under 5%",
        "3 rows share a prompt with the compared version (4.7 % of 64): 2 exactly, 1 nearly",
    ):
        assert expected in text
    assert "prompt length" not in text


def test_clean_dataset_has_no_findings() -> None:
    rows = clean_rows(90, seed=5)
    rep = quality_report(rows, compare_to=clean_rows(30, seed=6))
    assert rep["findings"] == []
    assert rep["exact_duplicates"]["groups"] == rep["near_duplicates"]["groups"] == 0
    assert rep["overlap"]["leaked_rows"] == 0
    assert not rep["labels"]["imbalanced"]


def test_near_empty_means_few_words_or_only_punctuation() -> None:
    texts = ["two words", "  ...  !!", "three whole words", "", None]
    rows = [ex(i, f"prompt number {i} here", t) for i, t in enumerate(texts)]
    f = quality_report(rows)["fields"]["reference"]
    assert f["empty"]["lines"] == [5, 6]
    assert f["near_empty"]["lines"] == [2, 3]


def test_duplicate_prompts_with_different_labels_are_called_out() -> None:
    rows = [
        ex(0, "Is this mug dishwasher safe?", "yes", "positive"),
        ex(1, "is this mug  dishwasher safe?", "no", "negative"),
        ex(2, "A totally different question here", "x"),
    ]
    rep = quality_report(rows)
    assert rep["exact_duplicates"]["items"][0]["conflicting_labels"]
    assert any("conflicting labels" in f for f in rep["findings"])


def test_chat_examples_are_compared_by_their_turns() -> None:
    turns = [
        {"role": "system", "content": "Write copy."},
        {"role": "user", "content": "Oak desk with drawers"},
    ]
    rows = [Example(None, turns, "a", None, {}, 1, None), Example(None, list(turns), "b", None, {}, 2, None)]
    assert quality_report(rows)["exact_duplicates"]["items"][0]["lines"] == [1, 2]


def _brute_force_pairs(texts: list[str], threshold: float) -> set[tuple[int, int]]:
    sets = [frozenset(re.findall(r"\w+", normalise_prompt(t))) for t in texts]
    return {
        (i, j)
        for i, j in itertools.combinations(range(len(texts)), 2)
        if len(sets[i] | sets[j]) and len(sets[i] & sets[j]) / len(sets[i] | sets[j]) >= threshold
    }


def test_lsh_clusters_match_brute_force_jaccard() -> None:
    rng = random.Random(11)
    texts = [words(rng, rng.randint(15, 30)) for _ in range(150)]
    for k in (1, 2, 3, 4):  # variants at several distances, some above and some below 0.8
        for src in rng.sample(range(150), 10):
            texts.append(change_words(texts[src], k, rng))
    truth = _brute_force_pairs(texts, 0.8)
    assert truth  # the data has pairs to find
    clusters = duplicate_clusters(texts, threshold=0.8, seed=0)
    found = {(i, j) for c in clusters for i, j in itertools.combinations(c, 2)}
    assert truth <= found
    # clusters are connected components of the true pairs
    in_truth = {i for p in truth for i in p}
    assert {i for c in clusters for i in c} == in_truth


def test_report_is_deterministic_for_a_seed(planted: dict) -> None:
    assert quality_report(planted["rows"], seed=4) == quality_report(planted["rows"], seed=4)


def test_empty_input() -> None:
    rep = quality_report([])
    assert rep["n_rows"] == 0 and rep["findings"] == []


def test_matrix_banding_finds_the_same_candidates_as_datasketch_lsh() -> None:
    """The hand-written banding over a signature matrix against datasketch's MinHashLSH on the same
    MinHashes."""
    import numpy as np
    from datasketch import MinHash, MinHashLSH

    from evalhub.datasets import quality

    rng = random.Random(12)
    texts = [words(rng, rng.randint(8, 30)) for _ in range(300)]
    for k in (1, 2, 3, 5, 8):
        for src in rng.sample(range(300), 12):
            texts.append(change_words(texts[src], k, rng))
    d = quality._distinct(texts, 1, {})
    sig = quality._signatures(d.shingles, 128, 3)
    bands, rows = quality._lsh_params(0.8, 128)
    ours = quality._candidate_pairs(sig, np.ones(len(sig), dtype=bool), bands, rows)

    mhs = MinHash.bulk([list(s) for s in d.shingles], num_perm=128, seed=3, hashfunc=int)
    assert all((m.hashvalues == sig[i]).all() for i, m in enumerate(mhs))
    lsh = MinHashLSH(num_perm=128, params=(bands, rows))
    for i, m in enumerate(mhs):
        lsh.insert(i, m)
    theirs = {(i, j) for i, m in enumerate(mhs) for j in lsh.query(m) if i < j}
    assert len(theirs) > 20
    assert ours == theirs

    half = 200  # across two sets: only pairs with one member on each side
    across = quality._candidate_pairs(sig, np.ones(len(sig), dtype=bool), bands, rows, split_at=half)
    assert across == {(i, j) for i, j in theirs if i < half <= j}
