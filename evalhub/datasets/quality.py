"""Data quality report for one dataset version (and its overlap with another). Django-free; returns plain
JSON.

What it looks for: empty and near-empty fields, exact and near-duplicate prompts, length distributions with
outliers, label balance, coverage of attribute values, and prompts shared with a second version (train/eval
leakage).

Near duplicates: seeded MinHash signatures over word shingles from `datasketch`, LSH banding with the band/row
counts `datasketch.MinHashLSH` picks (for a threshold 0.1 below the reporting one), then every candidate pair
is checked with the exact Jaccard similarity. The banding runs over a numpy matrix rather than MinHashLSH's
dict of Python objects, which took ~5 KB per row (gigabytes at the 1M-row import limit); a test checks it
finds the same candidates. A pair exactly at the threshold is found with probability ~0.87 (128 permutations),
at +0.05 ~0.97, above 0.9 ~1. Rows are named by `Example.source_line` throughout, the numbers a user sees in
their file.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from datasketch import MinHash, MinHashLSH
from datasketch.hashfunc import sha1_hash32

from evalhub.datasets.ingest import Example

# Lists in the report are cut to these sizes (counts always cover everything) so a 1M-row report stays small.
MAX_LINES = 50
MAX_GROUPS = 100
NEAR_EMPTY_WORDS = 3
UNDER_REPRESENTED_SHARE = 0.05
IMBALANCE_RATIO = 3.0
OUTLIER_MIN_ROWS = 10
NUM_PERM = 128
_WORD = re.compile(r"\w+")
_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def normalise_prompt(text: str) -> str:
    """Key for exact duplicates: case and runs of whitespace do not matter."""
    return " ".join(text.casefold().split())


# ------------------------------------------------------------------------------------------------------------
# Near duplicates


@dataclass
class _Distinct:
    """The distinct normalised prompts of one set, each with the rows that carry it and its hashed
    shingles."""

    keys: list[str]
    rows: list[list[int]]
    # Tuples, not sets: a 1M-row report must fit a worker's memory; sets are built only for candidate pairs.
    shingles: list[tuple[int, ...]]


def _distinct(texts: Sequence[str], shingle_size: int, cache: dict[str, int]) -> _Distinct:
    by_key: dict[str, list[int]] = {}
    for i, t in enumerate(texts):
        by_key.setdefault(normalise_prompt(t), []).append(i)
    keys = list(by_key)
    shingles = [_shingles(k, shingle_size, cache) for k in keys]
    return _Distinct(keys, [by_key[k] for k in keys], shingles)


def _shingles(norm: str, size: int, cache: dict[str, int]) -> tuple[int, ...]:
    words = _WORD.findall(norm)
    grams = (
        words if size == 1 else [" ".join(words[i : i + size]) for i in range(max(1, len(words) - size + 1))]
    )
    out = set()
    for g in grams:
        h = cache.get(g)
        if h is None:
            # Hash each distinct shingle once; MinHash then gets ints through an identity hashfunc.
            h = cache[g] = sha1_hash32(g.encode())
        out.add(h)
    return tuple(out)


def _signatures(sets: Sequence[tuple[int, ...]], num_perm: int, seed: int) -> np.ndarray:
    """MinHash signatures (datasketch, seeded) as one (n, num_perm) matrix instead of n Python objects."""
    out = np.empty((len(sets), num_perm), dtype=np.uint32)
    for i, m in enumerate(MinHash.generator(sets, num_perm=num_perm, seed=seed, hashfunc=int)):
        out[i] = m.hashvalues
    return out


def _lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) as datasketch's MinHashLSH chooses them, tuned well below the reporting threshold:
    at 0.8 an LSH tuned to 0.7 misses ~13 % of pairs right at the threshold, one tuned to 0.6 under 2 %. The exact
    Jaccard filters the extra candidates afterwards."""
    lsh = MinHashLSH(threshold=max(0.05, threshold - 0.2), num_perm=num_perm)
    return lsh.b, lsh.r


def _band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit key per band per row; equal band slices give equal keys (a collision only adds a
    candidate)."""
    x = sig[:, : bands * rows].reshape(len(sig), bands, rows).astype(np.uint64)
    h = np.full((len(sig), bands), 0xCBF29CE484222325, dtype=np.uint64)
    for k in range(rows):
        h = (h ^ x[:, :, k]) * np.uint64(0x100000001B3)  # FNV-1a over the band's values; wraps by design
    return h


def _candidate_pairs(
    sig: np.ndarray, ok: np.ndarray, bands: int, rows: int, split_at: int | None = None
) -> set[tuple[int, int]]:
    """LSH banding: pairs (i < j) of rows that agree on every value of at least one band, as MinHashLSH.query
    finds them, but over a matrix, so 1M rows need megabytes instead of gigabytes. Only rows where `ok` is
    true take part; with `split_at`, only pairs with i < split_at <= j (across two sets) are kept."""
    ids = np.flatnonzero(ok)
    keys = _band_keys(sig[ids], bands, rows)
    pairs: set[tuple[int, int]] = set()
    for b in range(bands):
        order = np.argsort(keys[:, b], kind="stable")
        col = keys[order, b]
        starts = np.flatnonzero(np.r_[True, col[1:] != col[:-1]])
        lengths = np.diff(np.r_[starts, len(col)])
        for st, ln in zip(starts[lengths > 1].tolist(), lengths[lengths > 1].tolist(), strict=True):
            members = sorted(ids[order[st : st + ln]].tolist())
            if split_at is None:
                pairs.update((members[x], members[y]) for x in range(ln) for y in range(x + 1, ln))
            else:
                left = [m for m in members if m < split_at]
                right = [m for m in members if m >= split_at]
                pairs.update((a, c) for a in left for c in right)
    return pairs


def _jaccard(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    inter = len(set(a).intersection(b))
    return inter / (len(a) + len(b) - inter) if inter else 0.0


def _estimate(sig: np.ndarray, i: int, j: int) -> float:
    return float(np.mean(sig[i] == sig[j]))  # what MinHash.jaccard computes


def _near_pairs_within(
    d: _Distinct, threshold: float, num_perm: int, seed: int
) -> list[tuple[int, int, float, float]]:
    """(i, j, exact Jaccard, MinHash estimate) for distinct prompts i < j at or above the threshold."""
    sig = _signatures(d.shingles, num_perm, seed)
    ok = np.array([bool(s) for s in d.shingles], dtype=bool)
    pairs = []
    for i, j in sorted(_candidate_pairs(sig, ok, *_lsh_params(threshold, num_perm))):
        jac = _jaccard(d.shingles[i], d.shingles[j])
        if jac >= threshold:
            pairs.append((i, j, jac, _estimate(sig, i, j)))
    return pairs


def _components(n: int, pairs: Sequence[tuple[int, int, float, float]]) -> list[list[int]]:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j, *_ in pairs:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        groups[find(i)].append(i)
    return [g for g in groups.values() if len(g) > 1]


def duplicate_clusters(
    texts: Sequence[str],
    *,
    threshold: float = 0.8,
    seed: int = 0,
    shingle_size: int = 1,
    num_perm: int = NUM_PERM,
) -> list[list[int]]:
    """Groups (of 2+ indices into `texts`) of exact or near-duplicate texts; used to keep them in one
    split."""
    d = _distinct(texts, shingle_size, {})
    comps = _components(len(d.keys), _near_pairs_within(d, threshold, num_perm, seed))
    in_comp = {k for c in comps for k in c}
    out = [sorted(i for k in c for i in d.rows[k]) for c in comps]
    out += [rows for k, rows in enumerate(d.rows) if len(rows) > 1 and k not in in_comp]
    return sorted(out)


# ------------------------------------------------------------------------------------------------------------
# Sections of the report


def _lines(lines: Sequence[int], idx: Sequence[int]) -> list[int]:
    return sorted(lines[i] for i in idx)[:MAX_LINES]


def _r(x: float) -> float:
    return round(float(x), 4)


def _word_counts(values: Sequence[str | None]) -> list[int]:
    return [len(_WORD.findall(v)) if v else 0 for v in values]


def _emptiness(values: Sequence[str | None], n_words: Sequence[int], lines: Sequence[int]) -> dict[str, Any]:
    empty, near = [], []
    for i, v in enumerate(values):
        if v is None or v == "":
            empty.append(i)
        elif n_words[i] < NEAR_EMPTY_WORDS:
            near.append(i)  # includes whitespace- or punctuation-only text (no word at all)
    return {
        "empty": {"count": len(empty), "lines": _lines(lines, empty)},
        "near_empty": {"count": len(near), "lines": _lines(lines, near)},
    }


def _distribution(values: np.ndarray, idx: np.ndarray, lines: Sequence[int]) -> dict[str, Any] | None:
    if len(values) == 0:
        return None
    out: dict[str, Any] = {
        "count": len(values),
        "min": int(values.min()),
        "max": int(values.max()),
        "mean": _r(values.mean()),
        "std": _r(values.std()),
        "quantiles": {
            f"p{round(q * 100)}": _r(v)
            for q, v in zip(_QUANTILES, np.quantile(values, _QUANTILES), strict=True)
        },
        "histogram": None,
        "outliers": None,
    }
    low, high = -np.inf, np.inf
    if len(values) >= OUTLIER_MIN_ROWS:
        # Lengths are right-skewed: Tukey fences (k=1.5) on log lengths flag few clean rows, and never fall
        # closer than a factor of 2 to the quartiles so tightly clustered lengths do not turn every deviation
        # into one.
        logs = np.log1p(values)
        q1, q3 = np.quantile(logs, [0.25, 0.75])
        iqr = q3 - q1
        raw_q1, raw_q3 = np.quantile(values, [0.25, 0.75])
        low = min(float(np.expm1(q1 - 1.5 * iqr)), raw_q1 / 2)
        high = max(float(np.expm1(q3 + 1.5 * iqr)), raw_q3 * 2)
        mask = (values < low) | (values > high)
        hits = idx[mask]
        out["outliers"] = {
            "method": "tukey fences (k=1.5) on log length",
            "low": _r(low),
            "high": _r(high),
            "count": int(mask.sum()),
            "lines": _lines(lines, hits.tolist()),
        }
    # Bins span the inliers so one huge row does not squash the chart; outliers are counted beside it.
    inliers = values[(values >= low) & (values <= high)]
    edges = np.histogram_bin_edges(inliers, bins="auto")
    if len(edges) > 31:
        edges = np.histogram_bin_edges(inliers, bins=30)
    counts, edges = np.histogram(inliers, bins=edges)
    out["histogram"] = {
        "edges": [_r(e) for e in edges],
        "counts": [int(c) for c in counts],
        "below": int((values < low).sum()),
        "above": int((values > high).sum()),
    }
    return out


def _lengths(
    values: Sequence[str | None], n_words: Sequence[int], lines: Sequence[int]
) -> dict[str, Any] | None:
    idx = np.array([i for i, v in enumerate(values) if v], dtype=np.int64)
    if len(idx) == 0:
        return None
    chars = np.array([len(values[i] or "") for i in idx], dtype=np.int64)
    words = np.array(n_words, dtype=np.int64)[idx]
    return {"chars": _distribution(chars, idx, lines), "words": _distribution(words, idx, lines)}


def _labels(labels: Sequence[str | None]) -> dict[str, Any] | None:
    counts = Counter(v for v in labels if v is not None)
    if not counts:
        return None
    total = sum(counts.values())
    ordered = counts.most_common()
    ratio = ordered[0][1] / ordered[-1][1]
    return {
        "counts": dict(ordered),
        "share": {k: _r(c / total) for k, c in ordered},
        "missing": len(labels) - total,
        "n_values": len(counts),
        "imbalance_ratio": _r(ratio),
        "majority": ordered[0][0],
        "minority": ordered[-1][0],
        "imbalanced": len(counts) > 1 and ratio >= IMBALANCE_RATIO,
    }


def _coverage(examples: Sequence[Example]) -> dict[str, Any]:
    n = len(examples)
    names = list(dict.fromkeys(k for ex in examples for k in ex.attributes))
    out: dict[str, Any] = {}
    for name in names:
        counts = Counter(ex.attributes.get(name, "") for ex in examples)
        missing = counts.pop("", 0)
        values = {
            v: {"count": c, "share": _r(c / n), "under_represented": c / n < UNDER_REPRESENTED_SHARE}
            for v, c in counts.most_common()
        }
        out[name] = {
            "values": values,
            "n_values": len(values),
            "missing": missing,
            "missing_share": _r(missing / n),
            "under_represented": [v for v, s in values.items() if s["under_represented"]],
        }
    return out


def _exact_groups(d: _Distinct, lines: Sequence[int], labels: Sequence[str | None]) -> dict[str, Any]:
    groups = [k for k, rows in enumerate(d.rows) if len(rows) > 1]
    groups.sort(key=lambda k: (-len(d.rows[k]), lines[d.rows[k][0]]))
    listed = []
    conflicting = 0
    for pos, k in enumerate(groups):
        rows = d.rows[k]
        distinct_labels = sorted({lab for i in rows if (lab := labels[i]) is not None})
        conflicting += len(distinct_labels) > 1
        if pos < MAX_GROUPS:
            listed.append(
                {
                    "lines": _lines(lines, rows),
                    "size": len(rows),
                    "text": _preview(d.keys[k]),
                    "labels": distinct_labels,
                    "conflicting_labels": len(distinct_labels) > 1,
                }
            )
    sizes = [len(d.rows[k]) for k in groups]
    return {
        "rows": sum(sizes),
        "groups": len(groups),
        "redundant": sum(sizes) - len(sizes),
        "conflicting_label_groups": conflicting,
        "items": listed,
    }


def _preview(text: str, n: int = 120) -> str:
    return text if len(text) <= n else text[:n] + "…"


def _near_groups(
    d: _Distinct, pairs: list[tuple[int, int, float, float]], lines: Sequence[int]
) -> dict[str, Any]:
    comps = _components(len(d.keys), pairs)
    edges: dict[int, list[tuple[float, float]]] = defaultdict(list)
    root = {k: ci for ci, comp in enumerate(comps) for k in comp}
    for i, _, jac, est in pairs:
        edges[root[i]].append((jac, est))
    items: list[dict[str, Any]] = []
    for ci, comp in enumerate(comps):
        rows = [r for k in comp for r in d.rows[k]]
        jacs = [e[0] for e in edges[ci]]
        items.append(
            {
                "lines": _lines(lines, rows),
                "size": len(rows),
                "distinct_prompts": len(comp),
                "jaccard": {"min": _r(min(jacs)), "max": _r(max(jacs))},
                "estimated_jaccard": _r(min(e[1] for e in edges[ci])),
                "text": _preview(d.keys[comp[0]]),
            }
        )
    items.sort(key=lambda g: (-g["size"], g["lines"][0]))
    return {
        "rows": sum(g["size"] for g in items),
        "groups": len(items),
        "pairs": len(pairs),
        "items": items[:MAX_GROUPS],
    }


def _overlap(
    ours: _Distinct,
    theirs: _Distinct,
    lines: Sequence[int],
    other_lines: Sequence[int],
    n: int,
    threshold: float,
    num_perm: int,
    seed: int,
) -> dict[str, Any]:
    their_index = {k: j for j, k in enumerate(theirs.keys)}
    exact = []
    for i, k in enumerate(ours.keys):
        j = their_index.get(k)
        if j is not None:
            exact.append((i, j))
    exact_set = {i for i, _ in exact}
    both = ours.shingles + theirs.shingles
    sig = _signatures(both, num_perm, seed)
    a = len(ours.keys)
    ok = np.array([bool(s) and (k >= a or k not in exact_set) for k, s in enumerate(both)], dtype=bool)
    best: dict[int, tuple[int, float]] = {}
    for i, jj in sorted(_candidate_pairs(sig, ok, *_lsh_params(threshold, num_perm), split_at=a)):
        jac = _jaccard(ours.shingles[i], theirs.shingles[jj - a])
        if jac >= threshold and (i not in best or jac > best[i][1]):
            best[i] = (jj - a, jac)
    near = [(i, j, jac, _estimate(sig, i, j + a)) for i, (j, jac) in sorted(best.items())]
    exact_rows = sum(len(ours.rows[i]) for i, _ in exact)
    near_rows = sum(len(ours.rows[i]) for i, *_ in near)
    return {
        "exact": {
            "rows": exact_rows,
            "prompts": len(exact),
            "items": [
                {
                    "lines": _lines(lines, ours.rows[i]),
                    "other_lines": _lines(other_lines, theirs.rows[j]),
                    "text": _preview(ours.keys[i]),
                }
                for i, j in exact[:MAX_GROUPS]
            ],
        },
        "near": {
            "rows": near_rows,
            "prompts": len(near),
            "items": [
                {
                    "lines": _lines(lines, ours.rows[i]),
                    "other_lines": _lines(other_lines, theirs.rows[j]),
                    "jaccard": _r(jac),
                    "estimated_jaccard": _r(est),
                    "text": _preview(ours.keys[i]),
                }
                for i, j, jac, est in near[:MAX_GROUPS]
            ],
        },
        "leaked_rows": exact_rows + near_rows,
        "leaked_share": _r((exact_rows + near_rows) / n) if n else 0.0,
    }


def overlapping_prompts(
    texts: Sequence[str],
    held_out: Sequence[str],
    *,
    threshold: float = 0.8,
    seed: int = 0,
    shingle_size: int = 1,
    num_perm: int = 128,
) -> list[int]:
    """Indices of `texts` whose prompt equals (normalised) or near-duplicates (Jaccard >= threshold) any prompt
    in `held_out`: the leakage guard of training exports. Same test as the quality report's overlap section."""
    if not texts or not held_out:
        return []
    cache: dict[str, int] = {}
    ours = _distinct(texts, shingle_size, cache)
    theirs = _distinct(held_out, shingle_size, cache)
    their_keys = set(theirs.keys)
    leaked_keys = {i for i, k in enumerate(ours.keys) if k in their_keys}
    both = ours.shingles + theirs.shingles
    a = len(ours.keys)
    ok = np.array([bool(sh) and (k >= a or k not in leaked_keys) for k, sh in enumerate(both)], dtype=bool)
    if ok[:a].any() and ok[a:].any():
        sig = _signatures(both, num_perm, seed)
        for i, jj in _candidate_pairs(sig, ok, *_lsh_params(threshold, num_perm), split_at=a):
            if i not in leaked_keys and _jaccard(ours.shingles[i], theirs.shingles[jj - a]) >= threshold:
                leaked_keys.add(i)
    return sorted(row for i in leaked_keys for row in ours.rows[i])


# ------------------------------------------------------------------------------------------------------------
# The report


def quality_report(
    examples: Sequence[Example],
    *,
    compare_to: Sequence[Example] | None = None,
    near_dup_threshold: float = 0.8,
    seed: int = 0,
    shingle_size: int = 1,
    num_perm: int = NUM_PERM,
) -> dict[str, Any]:
    """The quality report of `examples`, as JSON-ready data; `compare_to` adds a leakage section.

    Near duplicates are distinct prompts (after case/whitespace normalisation) whose word-shingle sets have a
    Jaccard similarity of at least `near_dup_threshold`; candidates come from MinHash LSH (seeded) and each is
    then checked exactly, so every reported pair really is that similar.
    """
    n = len(examples)
    lines = [ex.source_line for ex in examples]
    prompts = [ex.prompt_text() for ex in examples]
    references = [ex.reference for ex in examples]
    labels = [ex.label for ex in examples]
    cache: dict[str, int] = {}
    ours = _distinct(prompts, shingle_size, cache)
    has_reference = any(r is not None for r in references)
    prompt_words, reference_words = _word_counts(prompts), _word_counts(references)

    report: dict[str, Any] = {
        "n_rows": n,
        "params": {
            "near_dup_threshold": near_dup_threshold,
            "seed": seed,
            "shingle_size": shingle_size,
            "num_perm": num_perm,
            "near_empty_words": NEAR_EMPTY_WORDS,
            "under_represented_share": UNDER_REPRESENTED_SHARE,
            "imbalance_ratio": IMBALANCE_RATIO,
            "max_lines": MAX_LINES,
            "max_groups": MAX_GROUPS,
        },
        "fields": {
            "prompt": _emptiness(prompts, prompt_words, lines),
            "reference": _emptiness(references, reference_words, lines) if has_reference else None,
        },
        "exact_duplicates": _exact_groups(ours, lines, labels),
        "near_duplicates": _near_groups(
            ours, _near_pairs_within(ours, near_dup_threshold, num_perm, seed), lines
        ),
        "lengths": {
            "prompt": _lengths(prompts, prompt_words, lines),
            "reference": _lengths(references, reference_words, lines),
        },
        "labels": _labels(labels),
        "coverage": _coverage(examples),
        "overlap": None,
    }
    if compare_to is not None:
        theirs = _distinct([ex.prompt_text() for ex in compare_to], shingle_size, cache)
        report["overlap"] = _overlap(
            ours, theirs, lines, [ex.source_line for ex in compare_to], n, near_dup_threshold, num_perm, seed
        )
        report["overlap"]["other_n_rows"] = len(compare_to)
    report["findings"] = _findings(report)
    return report


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def _rows(n: int, singular: str, plural: str) -> str:
    return f"{n:,} {'row ' + singular if n == 1 else 'rows ' + plural}"


def _findings(r: dict[str, Any]) -> list[str]:
    out: list[str] = []
    n = r["n_rows"]
    ex = r["exact_duplicates"]
    if ex["groups"]:
        out.append(
            f"{_rows(ex['rows'], 'is', 'are')} exact duplicate prompts in {_plural(ex['groups'], 'group')} "
            f"({_plural(ex['redundant'], 'redundant copy', 'redundant copies')})"
        )
    if ex["conflicting_label_groups"]:
        out.append(f"{_plural(ex['conflicting_label_groups'], 'duplicate group')} carry conflicting labels")
    near = r["near_duplicates"]
    if near["groups"]:
        out.append(
            f"{_rows(near['rows'], 'is', 'are')} near-duplicate prompts in {_plural(near['groups'], 'group')}"
        )
    for field, stats in r["fields"].items():
        if stats is None:
            continue
        if stats["empty"]["count"]:
            out.append(f"{_rows(stats['empty']['count'], 'has', 'have')} an empty {field}")
        if stats["near_empty"]["count"]:
            out.append(
                f"{_rows(stats['near_empty']['count'], 'has', 'have')} a near-empty {field} "
                f"(fewer than {NEAR_EMPTY_WORDS} words)"
            )
    for field, dist in r["lengths"].items():
        out_rows = sorted(
            {
                line
                for unit in ("chars", "words")
                if dist and dist[unit] and dist[unit]["outliers"]
                for line in dist[unit]["outliers"]["lines"]
            }
        )
        if out_rows:
            out.append(
                f"{_rows(len(out_rows), 'has', 'have')} an unusual {field} length "
                f"({'line' if len(out_rows) == 1 else 'lines'} {', '.join(map(str, out_rows[:8]))}"
                f"{', …' if len(out_rows) > 8 else ''})"
            )
    lab = r["labels"]
    if lab and lab["imbalanced"]:
        out.append(
            f'labels are imbalanced: "{lab["majority"]}" has {lab["imbalance_ratio"]:.1f}× as many rows as '
            f'"{lab["minority"]}"'
        )
    if lab and lab["missing"]:
        out.append(f"{_rows(lab['missing'], 'has', 'have')} no label")
    for name, cov in r["coverage"].items():
        under = cov["under_represented"]
        if under:
            shown = ", ".join(f"{v} {cov['values'][v]['share'] * 100:.1f} %" for v in under[:5])
            out.append(
                f"{name}: {_plural(len(under), 'value')} under {UNDER_REPRESENTED_SHARE:.0%} of rows "
                f"({shown})"
            )
        if cov["missing"]:
            out.append(f"{name}: {_rows(cov['missing'], 'has', 'have')} no value")
    ov = r["overlap"]
    if ov and ov["leaked_rows"]:
        out.append(
            f"{_rows(ov['leaked_rows'], 'shares', 'share')} a prompt with the compared version "
            f"({ov['leaked_share'] * 100:.1f} % of {n:,}): {ov['exact']['rows']:,} exactly, "
            f"{ov['near']['rows']:,} nearly (train/eval leakage)"
        )
    return out


__all__ = ["duplicate_clusters", "normalise_prompt", "quality_report"]
