"""Seeded splits and re-sampling of a dataset version. Django-free; works on indices into the version's
examples.

`split` keeps exact and near-duplicate prompts (see `quality.duplicate_clusters`) in the same split, so the
same prompt cannot sit in train and in the held-out eval set, and can stratify by an attribute (or the label).
`rebalance` picks indices that give every value of an attribute the same count.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from evalhub.datasets.ingest import Example
from evalhub.datasets.quality import duplicate_clusters

DEFAULT_FRACTIONS: Mapping[str, float] = {"train": 0.8, "validation": 0.1, "eval": 0.1}


def attribute_values(examples: Sequence[Example], name: str) -> list[str]:
    """Each example's value of attribute `name` ("" when missing). `name="label"` means the label field unless
    the examples have an attribute called "label"."""
    if any(name in ex.attributes for ex in examples):
        return [ex.attributes.get(name, "") for ex in examples]
    if name == "label":
        return [ex.label or "" for ex in examples]
    raise ValueError(f'no example has an attribute "{name}"')


def _check_fractions(fractions: Mapping[str, float]) -> None:
    if not fractions:
        raise ValueError("fractions is empty")
    for name, f in fractions.items():
        if not (isinstance(f, (int, float)) and math.isfinite(f) and f >= 0):
            raise ValueError(f"fraction of {name!r} must be a number >= 0, got {f!r}")
    total = sum(fractions.values())
    if abs(total - 1) > 1e-6:
        raise ValueError(f"fractions must add up to 1, they add up to {total:g}")


def _round_to_total(ideal: Sequence[float], total: int, allowed: Sequence[bool]) -> list[int]:
    """Integers close to `ideal` summing to `total` (largest remainder), never negative, zero where not
    allowed."""
    base = [max(0, math.floor(x)) if ok else 0 for x, ok in zip(ideal, allowed, strict=True)]
    rest = [x - b if ok else -math.inf for x, b, ok in zip(ideal, base, allowed, strict=True)]
    order = sorted(range(len(base)), key=lambda k: -rest[k])  # stable: ties go to the split named first
    diff = total - sum(base)
    while diff > 0:
        for k in order:
            if diff and allowed[k]:
                base[k] += 1
                diff -= 1
    for k in reversed(order):
        while diff < 0 and base[k] > 0:
            base[k] -= 1
            diff += 1
    return base


def split(
    examples_or_n: Sequence[Example] | int,
    *,
    fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    stratify_by: str | None = None,
    group_duplicates: bool = True,
    near_dup_threshold: float = 0.8,
) -> dict[str, list[int]]:
    """Partition indices 0..n-1 into named splits; deterministic for a seed. Returns sorted indices per split.

    Counts follow `fractions` (rounded so each split is within one row of n × fraction when rows are not
    grouped); with `stratify_by`, every value of that attribute is spread over the splits in the same
    proportions. Every split with a positive fraction gets at least one row when there are enough rows (or
    duplicate groups) to go round. With examples and `group_duplicates`, exact and near-duplicate prompts move
    as one unit, so they never straddle two splits (counts may then deviate by up to a group's size).
    """
    _check_fractions(fractions)
    names = list(fractions)
    fr = [float(fractions[k]) for k in names]
    allowed = [f > 0 for f in fr]
    if isinstance(examples_or_n, int):
        if stratify_by is not None:
            raise ValueError("stratify_by needs the examples, not just their number")
        n = examples_or_n
        units = [[i] for i in range(n)]
    else:
        examples = examples_or_n
        n = len(examples)
        in_group: set[int] = set()
        units = []
        if group_duplicates and n > 1:
            units = duplicate_clusters(
                [ex.prompt_text() for ex in examples], threshold=near_dup_threshold, seed=seed
            )
            in_group = {i for u in units for i in u}
        units += [[i] for i in range(n) if i not in in_group]
    units.sort(key=lambda u: u[0])
    strata: dict[str, list[int]] = defaultdict(list)  # stratum -> unit numbers
    values = (
        attribute_values(examples_or_n, stratify_by)
        if stratify_by and not isinstance(examples_or_n, int)
        else None
    )
    for u, members in enumerate(units):
        strata[values[members[0]] if values else ""].append(u)

    rng = np.random.default_rng(seed)
    assigned: list[list[int]] = [[] for _ in names]  # unit numbers per split
    rows = [0] * len(names)
    seen_rows = 0
    for key in sorted(strata):
        order = [strata[key][i] for i in rng.permutation(len(strata[key]))]
        n_rows = sum(len(units[u]) for u in order)
        seen_rows += n_rows
        # Carry rounding across strata so the totals stay on target even when each stratum is small.
        targets = _round_to_total([seen_rows * f - r for f, r in zip(fr, rows, strict=True)], n_rows, allowed)
        got = [0] * len(names)
        for u in order:
            k = max(range(len(names)), key=lambda k: (allowed[k], targets[k] - got[k], -k))
            got[k] += len(units[u])
            assigned[k].append(u)
        rows = [r + g for r, g in zip(rows, got, strict=True)]

    for k in range(len(names)):
        if allowed[k] and not assigned[k]:
            donors = [d for d in range(len(names)) if len(assigned[d]) > 1]
            if not donors:
                break
            d = max(donors, key=lambda d: (rows[d], -d))
            u = min(assigned[d][::-1], key=lambda u: len(units[u]))  # the smallest, most recently placed unit
            assigned[d].remove(u)
            assigned[k].append(u)
            rows[d] -= len(units[u])
            rows[k] += len(units[u])
    return {name: sorted(i for u in assigned[k] for i in units[u]) for k, name in enumerate(names)}


def rebalance(
    examples: Sequence[Example], *, attribute: str, mode: Literal["down", "up"] = "down", seed: int = 0
) -> list[int]:
    """Sorted indices giving every value of `attribute` the same count; rows without a value are left out.

    "down" samples each value down to the rarest value's count (no repeats); "up" keeps every row and repeats
    rows of the rarer values up to the commonest value's count: whole copies first, then a seeded sample
    without replacement, so no row is repeated more than once beyond any other row of its value.
    """
    if mode not in ("down", "up"):
        raise ValueError(f'mode must be "down" or "up", got {mode!r}')
    values = attribute_values(examples, attribute)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, v in enumerate(values):
        if v:
            groups[v].append(i)
    if not groups:
        return []
    rng = np.random.default_rng(seed)
    out: list[int] = []
    if mode == "down":
        m = min(len(g) for g in groups.values())
        for v in sorted(groups):
            out += rng.choice(groups[v], size=m, replace=False).tolist()
    else:
        m = max(len(g) for g in groups.values())
        for v in sorted(groups):
            g = groups[v]
            whole, extra = divmod(m, len(g))
            out += g * whole + rng.choice(g, size=extra, replace=False).tolist()
    return sorted(out)


__all__ = ["DEFAULT_FRACTIONS", "attribute_values", "rebalance", "split"]
