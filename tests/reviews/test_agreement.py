"""Agreement on real ratings from the database: Krippendorff's alpha equals the `krippendorff` package to 1e-9
(random, all-equal and missing data), kappa equals scikit-learn's, gold accuracy and consensus per annotator."""

from __future__ import annotations

import math
import random
from typing import Any

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from evalhub.reviews import analysis, services
from evalhub.reviews.models import Rating
from tests.reviews.factories import make_campaign, make_runs

CRITERIA = [
    {"name": "Accuracy", "scale": "likert", "anchors": ["1", "2", "3", "4", "5"]},
    {"name": "Fluency", "scale": "likert", "anchors": ["1", "2", "3", "4", "5", "6", "7"], "agreement_level": "interval"},
    {"name": "Safe", "scale": "binary"},
    {"name": "Tone", "scale": "categorical", "options": ["warm", "neutral", "cold"]},
]


def _rate_everything(campaign: Any, users: list[Any], pick: Any) -> None:
    for user in users:
        while (a := services.assignment_next(campaign=campaign, user=user)) is not None:
            values = pick(user, a)
            if values is None:
                services.assignment_skip(assignment=a, user=user)
                continue
            services.rating_submit(campaign=campaign, user=user, assignment_token=a.token, values=values)


def _package_alpha(data: np.ndarray, level: str, domain: list[Any]) -> float:
    try:
        return float(krippendorff.alpha(reliability_data=data, level_of_measurement=level, value_domain=domain))
    except ValueError:
        return math.nan


def _same(a: float | None, b: float) -> bool:
    if a is None:
        return math.isnan(b)
    return abs(a - b) <= 1e-9


def _db_matrix(campaign: Any, name: str, users: list[Any], encode: Any = float) -> np.ndarray:
    """The raters x units matrix read independently of the code under test."""
    items = sorted({r.item_id for r in Rating.objects.filter(campaign=campaign, item__is_gold=False)})
    order = sorted(u.pk for u in users)
    m = np.full((len(order), len(items)), np.nan)
    for r in Rating.objects.filter(campaign=campaign, item__is_gold=False).prefetch_related("values__criterion"):
        for v in r.values.all():
            if v.criterion.name == name and r.annotator_id in order:
                m[order.index(r.annotator_id), items.index(r.item_id)] = encode(v.number if v.number is not None else v.label)
    # Drop raters who never rated this criterion, as the report does.
    return m[~np.all(np.isnan(m), axis=1)]


@pytest.mark.django_db
@pytest.mark.parametrize("seed", [1, 2])
def test_alpha_on_random_ratings_with_missing_values_equals_the_package(world: Any, annotators: list[Any], seed: int) -> None:
    runs = make_runs(world.project, n_examples=8, n_versions=2)
    rubric = services.rubric_create(project=world.project, name="R", criteria=CRITERIA, created_by=world.lead)
    campaign = make_campaign(world.project, world.lead, runs, overlap=3, rubric=rubric)
    rng = random.Random(seed)
    users = [world.annotator, *annotators]

    def pick(user: Any, a: Any) -> dict[str, Any] | None:
        if rng.random() < 0.2:
            return None  # skipped: leaves holes (missing values) in the matrix
        base = a.item.output_id % 5 + 1
        return {"Accuracy": min(5, max(1, base + rng.choice([-1, 0, 0, 1]))), "Fluency": rng.randint(1, 7),
                "Safe": rng.choice([0, 1, 1]), "Tone": rng.choice(["warm", "neutral", "cold"])}

    _rate_everything(campaign, users, pick)
    report = {r.title: r for r in analysis.agreement_report(campaign, charts=False)}
    labels = {"warm": 0.0, "neutral": 1.0, "cold": 2.0}
    expected = {
        "Accuracy": _package_alpha(_db_matrix(campaign, "Accuracy", users), "ordinal", [1, 2, 3, 4, 5]),
        "Fluency": _package_alpha(_db_matrix(campaign, "Fluency", users), "interval", list(range(1, 8))),
        "Safe": _package_alpha(_db_matrix(campaign, "Safe", users), "nominal", [0, 1]),
        "Tone": _package_alpha(_db_matrix(campaign, "Tone", users, encode=lambda s: labels[s]), "nominal", [0, 1, 2]),
    }
    for name, value in expected.items():
        assert not math.isnan(value)
        assert _same(report[name].alpha, value), (name, report[name].alpha, value)
    assert report["Accuracy"].level == "ordinal" and report["Fluency"].level == "interval"
    assert report["Tone"].level == "nominal"
    assert np.isnan(_db_matrix(campaign, "Accuracy", users)).any()  # the data really had missing values

    # Pairwise kappa between the first two raters equals scikit-learn's on the items both rated.
    m = _db_matrix(campaign, "Tone", users, encode=lambda s: labels[s])
    both = ~np.isnan(m[0]) & ~np.isnan(m[1])
    if both.sum() >= 2 and len(set(m[0][both]) | set(m[1][both])) > 1:
        assert report["Tone"].kappa[0][1] == pytest.approx(cohen_kappa_score(m[0][both], m[1][both]), abs=1e-9)


@pytest.mark.django_db
def test_alpha_when_everyone_gives_the_same_rating_equals_the_package(world: Any, annotators: list[Any]) -> None:
    runs = make_runs(world.project, n_examples=3, n_versions=1)
    rubric = services.rubric_create(project=world.project, name="R", criteria=CRITERIA, created_by=world.lead)
    campaign = make_campaign(world.project, world.lead, runs, overlap=2, rubric=rubric)
    users = [world.annotator, *annotators[:2]]
    _rate_everything(campaign, users, lambda u, a: {"Accuracy": 4, "Fluency": 6, "Safe": 1, "Tone": "warm"})
    report = {r.title: r for r in analysis.agreement_report(campaign, charts=False)}
    package = _package_alpha(_db_matrix(campaign, "Accuracy", users), "ordinal", [1, 2, 3, 4, 5])
    assert math.isnan(package) and report["Accuracy"].alpha is None
    assert "undefined" in report["Accuracy"].alpha_words


@pytest.mark.django_db
def test_perfect_agreement_and_gold_accuracy_per_annotator(world: Any, annotators: list[Any]) -> None:
    runs = make_runs(world.project, n_examples=4, n_versions=2)
    rubric = services.rubric_create(project=world.project, name="R", criteria=CRITERIA, created_by=world.lead)
    campaign = make_campaign(world.project, world.lead, runs, overlap=2, rubric=rubric)
    gold = campaign.items.order_by("position")[0]
    services.campaign_set_gold(campaign=campaign, item=gold, expected={"Accuracy": 5, "Safe": 1})
    careless = annotators[0]
    users = [world.annotator, careless, annotators[1]]

    def pick(user: Any, a: Any) -> dict[str, Any]:
        level = a.item.output_id % 5 + 1
        if a.item_id == gold.pk:
            return {"Accuracy": 1 if user == careless else 5, "Fluency": 4, "Safe": 1, "Tone": "warm"}
        return {"Accuracy": level, "Fluency": level, "Safe": level % 2, "Tone": ["warm", "cold"][level % 2]}

    _rate_everything(campaign, users, pick)
    report = {r.title: r for r in analysis.agreement_report(campaign, charts=False)}
    assert report["Accuracy"].alpha == pytest.approx(1.0)
    rows = {r.annotator: r for r in analysis.annotator_report(campaign)}
    assert rows[world.annotator.username].gold.value == 1.0  # type: ignore[union-attr]
    assert rows[careless.username].gold.value == 0.5  # Accuracy wrong, Safe right  # type: ignore[union-attr]
    assert rows[careless.username].gold_n == 2
    assert all(r.consensus == pytest.approx(1.0) for r in rows.values() if r.consensus_units)
