"""Rubrics: templates, validation, and versioning that never mixes versions inside a campaign."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from evalhub.reviews import services
from evalhub.reviews.models import Rating, RubricVersion
from evalhub.reviews.rubric_templates import TEMPLATES
from tests.reviews.factories import SIMPLE_CRITERIA, make_campaign, make_rubric


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("template", "names"),
    [("chatbot", ["Helpfulness", "Coherence", "Safety", "Conciseness"]),
     ("content", ["Creativity", "Accuracy", "Tone", "Relevance"])],
)
def test_templates_copy_into_an_editable_project_rubric(world: Any, template: str, names: list[str]) -> None:
    rubric = services.rubric_copy_template(project=world.project, template=template, created_by=world.lead)
    version = services.rubric_latest_version(rubric)
    assert [c.name for c in version.criteria.all()] == names
    likert = [c for c in version.criteria.all() if c.scale == "likert"]
    assert likert and all(len(c.anchors) == 5 and all(a.strip() for a in c.anchors) for c in likert)
    # A second copy gets its own name instead of failing.
    again = services.rubric_copy_template(project=world.project, template=template, created_by=world.lead)
    assert again.name == f"{TEMPLATES[template]['name']} (2)"
    # Editing the copy changes neither the template nor the other copy.
    criteria = [services.criterion_spec_of(c) for c in version.criteria.all()][:2]
    services.rubric_update(rubric=rubric, criteria=criteria, user=world.lead)
    assert len(TEMPLATES[template]["criteria"]) == 4
    assert services.rubric_latest_version(again).criteria.count() == 4


@pytest.mark.django_db
def test_editing_an_unused_rubric_changes_it_in_place(world: Any) -> None:
    rubric = make_rubric(world.project, world.lead)
    criteria = [*SIMPLE_CRITERIA, {"name": "Persuasiveness", "scale": "likert", "anchors": ["No", "Some", "Very"]}]
    version = services.rubric_update(rubric=rubric, criteria=criteria, user=world.lead)
    assert version.number == 1
    assert RubricVersion.objects.filter(rubric=rubric).count() == 1
    assert "Persuasiveness" in [c.name for c in version.criteria.all()]


@pytest.mark.django_db
def test_editing_a_rubric_in_use_creates_a_version_and_the_campaign_keeps_its_own(world: Any, runs: Any) -> None:
    rubric = make_rubric(world.project, world.lead)
    campaign = make_campaign(world.project, world.lead, runs, rubric=rubric)
    v1 = campaign.rubric_version
    changed = [{"name": "Accuracy", "scale": "likert", "anchors": ["Bad", "Good", "Great"]},
               {"name": "Persuasiveness", "scale": "binary"}]
    v2 = services.rubric_update(rubric=rubric, criteria=changed, user=world.lead, note="fewer levels")
    assert (v1.number, v2.number) == (1, 2)
    assert v2.note == "fewer levels"
    assert [len(c.anchors) for c in v1.criteria.all() if c.name == "Accuracy"] == [5]

    # An annotator mid-campaign still rates on version 1: a v2-only criterion is refused, a v1 level 5 is fine.
    assignment = services.assignment_next(campaign=campaign, user=world.annotator)
    assert assignment is not None
    with pytest.raises(ValidationError) as err:
        services.rating_submit(campaign=campaign, user=world.annotator, assignment_token=assignment.token,
                               values={"Accuracy": 5, "Safe": 1, "Persuasiveness": 1})
    assert "values.Persuasiveness" in err.value.message_dict
    services.rating_submit(campaign=campaign, user=world.annotator, assignment_token=assignment.token,
                           values={"Accuracy": 5, "Safe": 1})
    rating = Rating.objects.get()
    assert rating.rubric_version_id == v1.pk
    assert {v.criterion.version_id for v in rating.values.all()} == {v1.pk}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("criteria", "field"),
    [
        ([{"name": "A", "scale": "likert", "anchors": ["only one"]}], "criteria.1.anchors"),
        ([{"name": "A", "scale": "likert", "anchors": [str(i) for i in range(10)]}], "criteria.1.anchors"),
        ([{"name": "A", "scale": "likert", "anchors": ["x", " "]}], "criteria.1.anchors"),
        ([{"name": "A", "scale": "binary"}, {"name": "a", "scale": "binary"}], "criteria.2.name"),
        ([{"name": "A", "scale": "categorical", "options": ["one"]}], "criteria.1.options"),
        ([{"name": "A", "scale": "multilabel", "options": ["x", "X"]}], "criteria.1.options"),
        ([{"name": "A", "scale": "stars"}], "criteria.1.scale"),
        ([{"name": "A\x00", "scale": "binary"}], "criteria.1.name"),
        ([{"name": "A", "scale": "binary", "weight": -1}], "criteria.1.weight"),
        ([{"name": "A", "scale": "binary", "agreement_level": "interval"}], "criteria.1.agreement_level"),
        ([], "criteria"),
    ],
)
def test_invalid_criteria_are_refused_naming_the_field(world: Any, criteria: list[dict[str, Any]], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        services.rubric_create(project=world.project, name="R", criteria=criteria, created_by=world.lead)
    assert field in err.value.message_dict
    assert not RubricVersion.objects.exists()


@pytest.mark.django_db
def test_likert_can_ask_for_interval_agreement(world: Any) -> None:
    rubric = make_rubric(world.project, world.lead, criteria=[
        {"name": "Fluency", "scale": "likert", "anchors": ["1", "2", "3", "4", "5"], "agreement_level": "interval"},
        {"name": "Tone", "scale": "categorical", "options": ["a", "b"]},
        {"name": "Score", "scale": "likert", "anchors": ["1", "2", "3"]},
    ])
    levels = {c.name: c.level for c in services.rubric_latest_version(rubric).criteria.all()}
    assert levels == {"Fluency": "interval", "Tone": "nominal", "Score": "ordinal"}


@pytest.mark.django_db
def test_rubric_pages_create_edit_and_version(world: Any, client_for: Any, runs: Any) -> None:
    c = client_for(world.lead)
    pid = world.project.pk
    r = c.post(f"/p/{pid}/reviews/rubrics/", {"template": "content"})
    assert r.status_code == 302
    rubric_url = r["Location"]
    page = c.get(rubric_url)
    assert page.status_code == 200 and "Creativity" in page.content.decode()
    form = page.context["formset"]
    data: dict[str, Any] = {"name": "Product copy", "description": "", "note": "",
                            "c-TOTAL_FORMS": str(len(form.forms)), "c-INITIAL_FORMS": str(form.initial_form_count()),
                            "c-MIN_NUM_FORMS": "0", "c-MAX_NUM_FORMS": "30"}
    for i, f in enumerate(form.forms):
        for name, value in (f.initial or {}).items():
            data[f"c-{i}-{name}"] = "on" if value is True else ("" if value is False else value)
    n = len(form.forms) - 1
    data.update({f"c-{n}-name": "Persuasiveness", f"c-{n}-scale": "likert", f"c-{n}-anchors": "Flat\nSome pull\nCompelling",
                 f"c-{n}-weight": "1", f"c-{n}-required": "on"})
    assert c.post(rubric_url, data).status_code == 302
    rubric = world.project.rubrics.get(name="Product copy")
    assert [cr.name for cr in services.rubric_latest_version(rubric).criteria.all()][-1] == "Persuasiveness"
    # Broken input comes back with the error next to the criterion, nothing saved.
    data[f"c-{n}-anchors"] = "Only one level"
    bad = c.post(rubric_url, data)
    assert bad.status_code == 200
    assert "2 to 9 levels" in bad.content.decode()
