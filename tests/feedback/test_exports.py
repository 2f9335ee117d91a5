"""Export builders on annotations made through the real services: what goes in, what is filtered out and why, the
leakage guard, the dataset version and files an export becomes, and refusals that create nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from evalhub.core.storage import artifact_from_key
from evalhub.datasets.models import DatasetVersion, VersionKind, VersionSource
from evalhub.feedback.builders import ExportOptions, IdSet
from evalhub.feedback.models import FeedbackExport
from evalhub.feedback.services import export_create
from tests.feedback import factories
from tests.feedback.factories import PRODUCTS, brief, good_text, names_material

pytestmark = pytest.mark.django_db


def export(s: factories.Scenario, **options: Any) -> FeedbackExport:
    formats = options.pop("formats", ("jsonl",))
    return export_create(project=s.project, user=s.lead, options=ExportOptions(**options), formats=formats)


def rows(e: FeedbackExport) -> list[dict[str, Any]]:
    path = artifact_from_key(e.files["jsonl"])
    return [json.loads(line) for line in path.read_text().splitlines()]


def refused(call: Any) -> str:
    before = (FeedbackExport.objects.count(), DatasetVersion.objects.count())
    with pytest.raises(ValidationError) as info:
        call()
    assert (FeedbackExport.objects.count(), DatasetVersion.objects.count()) == before, (
        "a refusal creates nothing"
    )
    return " ".join(info.value.messages)


def test_rated_outputs_at_or_above_the_threshold_become_sft_records(world: Any) -> None:
    s = factories.scenario(world)
    factories.review(s)
    e = export(s, kind="sft", sources=("rated",), criteria=("Quality", "Names material"), min_score=0.75)
    records = rows(e)
    # Only version 0 names the material; the raters gave it 5/5 and pass, the other 2/5 and fail.
    assert len(records) == len(PRODUCTS)
    for r in records:
        prompt, answer = r["messages"][0]["content"], r["messages"][-1]["content"]
        assert r["messages"][-1]["role"] == "assistant" and names_material(prompt, answer)
        assert r["source"] == "rated" and r["id"].startswith("output:")
    assert e.counts["dropped"]["rated"]["below_min_score"] == len(PRODUCTS)
    # Lineage: every rating of the kept outputs (k=2 raters x 2 criteria share one rating row each).
    from evalhub.reviews.models import Rating

    kept_outputs = [s.outputs[(0, i)].pk for i in range(len(PRODUCTS))]
    used = sorted(Rating.objects.filter(item__output_id__in=kept_outputs).values_list("pk", flat=True))
    assert [i for lo, hi in e.lineage["ratings"] for i in range(lo, hi + 1)] == used
    assert e.counts["annotations"] == len(used)


def test_the_export_is_an_immutable_feedback_version_with_its_lineage(world: Any) -> None:
    s = factories.scenario(world)
    factories.review(s)
    e = export(s, kind="sft", sources=("rated",), min_score=0.75)
    v = e.version
    assert (
        v.source == VersionSource.FEEDBACK and v.kind == VersionKind.EXAMPLES and v.row_count == len(PRODUCTS)
    )
    assert v.change_summary["feedback_export"] == e.pk and v.change_summary["counts"]["written"] == len(
        PRODUCTS
    )
    first = v.examples.order_by("index").first()
    assert first.external_id.startswith("output:") and first.attributes["feedback_source"] == "rated"
    assert first.attributes["material"] in {m for _, m in PRODUCTS}
    assert first.reference == good_text(*PRODUCTS[0]) and first.prompt == brief(*PRODUCTS[0])
    message = refused(lambda: export(s, kind="sft", sources=("rated",), min_score=0.75))
    assert f"identical to v{v.number}" in message


def test_corrections_make_the_corrected_text_the_target(world: Any) -> None:
    s = factories.scenario(world)
    factories.review(s, corrections=True)
    e = export(s, kind="sft", sources=("corrections",))
    records = rows(e)
    assert records and all("(edited by" in r["messages"][-1]["content"] for r in records)
    assert all(names_material(r["messages"][0]["content"], r["messages"][-1]["content"]) for r in records)
    from evalhub.reviews.models import Correction

    assert e.counts["annotations_by_table"]["corrections"] == Correction.objects.count() == len(records)


def test_a_corrected_output_is_exported_as_its_correction_not_also_as_rated(world: Any) -> None:
    """A lenient rater passes every output yet fixes those that miss the material: the fix is the target, and the
    original it fixed must not sit beside it as a second answer to the same prompt."""
    s = factories.scenario(world)

    def lenient(user: Any, prompt: str, text: str) -> dict[str, Any]:
        return {"Quality": 5, "Names material": 1}

    factories.review(s, rater=lenient, corrections=True)
    from evalhub.reviews.models import Correction

    corrected = set(Correction.objects.values_list("item__output_id", flat=True))
    assert corrected and len(corrected) < len(s.outputs)
    both = rows(export(s, kind="sft", sources=("rated", "corrections")))
    rated_ids = {int(r["id"].split(":")[1]) for r in both if r["source"] == "rated"}
    assert rated_ids and not rated_ids & corrected
    # Every output is in: as rated, or as its corrections (one per annotator who fixed it).
    assert len(rated_ids) == len(s.outputs) - len(corrected)
    assert len(both) == len(rated_ids) + Correction.objects.count()
    # Only the rated source chosen: nothing supersedes the originals.
    alone = export(s, kind="sft", sources=("rated",))
    assert len(rows(alone)) == len(s.outputs) and not alone.counts["dropped"].get("rated", {}).get(
        "superseded_by_correction"
    )


def test_accepted_and_fixed_curated_examples_are_sft_records(world: Any) -> None:
    from evalhub.datasets import services as datasets

    s = factories.scenario(world)
    queue = datasets.curation_queue_create(version=s.pool, name="Check", created_by=s.lead)
    items = list(queue.items.order_by("position").select_related("example"))
    datasets.curation_decide(item=items[0], user=world.annotator, decision="accept")
    datasets.curation_decide(
        item=items[1],
        user=world.annotator,
        decision="fix",
        fixed_prompt=items[1].example.prompt,
        fixed_reference="Fixed: solid, honest copy.",
    )
    datasets.curation_decide(item=items[2], user=world.annotator, decision="reject")
    records = rows(export(s, kind="sft", sources=("curated",)))
    assert [r["messages"][-1]["content"] for r in records] == [
        items[0].example.reference,
        "Fixed: solid, honest copy.",
    ]


def test_arena_winner_is_chosen_and_loser_rejected(world: Any) -> None:
    s = factories.scenario(world)
    factories.arena(s, overlap=1)
    records = rows(export(s, kind="dpo", sources=("arena",)))
    assert len(records) == len(PRODUCTS)
    for r in records:
        prompt = r["prompt"][0]["content"]
        assert names_material(prompt, r["chosen"][0]["content"])
        assert not names_material(prompt, r["rejected"][0]["content"])
        assert r["chosen"][0]["role"] == r["rejected"][0]["role"] == "assistant"


def test_ties_and_both_bad_are_left_out_by_default_and_count_when_asked(world: Any) -> None:
    s = factories.scenario(world)

    def voter(user: Any, prompt: str, a: str, b: str) -> str:
        # Two annotators prefer the material; the third calls it a tie, or both bad on the first product.
        if user == s.annotators[2]:
            return "both_bad" if PRODUCTS[0][0] in prompt else "tie"
        return factories.material_voter(user, prompt, a, b)

    factories.arena(s, overlap=3, voter=voter)
    # Left out, the third vote does not dilute the two decisive ones.
    assert export(s, kind="dpo", sources=("arena",), min_agreement=0.9).records == len(PRODUCTS)
    # Counted, it does: only the comparison whose third vote was "both bad" (still left out) keeps full agreement.
    ties_counted = export(s, kind="dpo", sources=("arena",), include_ties=True, min_agreement=0.9)
    assert [r["prompt"][0]["content"] for r in rows(ties_counted)] == [brief(*PRODUCTS[0])]
    message = refused(
        lambda: export(
            s, kind="dpo", sources=("arena",), include_ties=True, include_both_bad=True, min_agreement=0.9
        )
    )
    assert "agreement below the minimum" in message


def test_rubric_pairs_need_the_margin(world: Any) -> None:
    s = factories.scenario(world)
    factories.review(s)
    wide = export(s, kind="dpo", sources=("rubric_pairs",), criteria=("Quality",), margin=0.5)
    records = rows(wide)
    assert len(records) == len(PRODUCTS)  # 5/5 vs 2/5 = 0.75 apart on the 0..1 scale
    assert all(names_material(r["prompt"][0]["content"], r["chosen"][0]["content"]) for r in records)
    message = refused(
        lambda: export(s, kind="dpo", sources=("rubric_pairs",), criteria=("Quality",), margin=0.8)
    )
    assert "score difference below the margin" in message


def test_leakage_guard_removes_exact_and_near_duplicate_eval_prompts_and_says_how_many(world: Any) -> None:
    eval_name, eval_material = factories.EVAL_PRODUCTS[0]
    near = brief(eval_name, eval_material).replace("practical", "plain")  # one word changed
    s = factories.scenario(world, extra_pool_prompts=[brief(*factories.EVAL_PRODUCTS[1]), near])
    factories.arena(s, voter=lambda u, p, a, b: "a")
    e = export(s, kind="dpo", sources=("arena",))
    assert e.counts["leaked"] == 2 and e.counts["dropped"]["arena"]["leakage"] == 2
    held_out = {factories.brief(*p) for p in factories.EVAL_PRODUCTS}
    assert not any(
        r["prompt"][0]["content"] in held_out or r["prompt"][0]["content"] == near for r in rows(e)
    )
    assert e.held_out == [s.eval.pk]


def test_an_export_of_only_held_out_prompts_is_refused_and_says_why(world: Any) -> None:
    s = factories.scenario(world, products=factories.EVAL_PRODUCTS)
    factories.arena(s)
    message = refused(lambda: export(s, kind="dpo", sources=("arena",)))
    assert "held-out eval set" in message and "2 record(s)" in message


def test_filters_that_leave_nothing_are_refused(world: Any) -> None:
    s = factories.scenario(world)
    assert "no annotations" in refused(lambda: export(s, kind="sft", sources=("rated",)))
    factories.review(s, overlap=1)
    message = refused(lambda: export(s, kind="sft", sources=("rated",), min_agreement=0.5))
    assert "agreement below the minimum" in message


def test_min_agreement_keeps_outputs_whose_raters_agree(world: Any) -> None:
    s = factories.scenario(world)

    def rater(user: Any, prompt: str, text: str) -> dict[str, Any]:
        values = factories.material_rater(user, prompt, text)
        if user == s.annotators[1] and PRODUCTS[0][0] in prompt:
            values["Quality"] = 1  # disagrees with the others on the first product only
        return values

    factories.review(s, overlap=3, rater=rater)
    loose = export(s, kind="sft", sources=("rated",), criteria=("Names material",), min_score=1.0)
    strict = export(s, kind="sft", sources=("rated",), min_score=0.5, min_agreement=0.9)
    assert loose.records == len(PRODUCTS)
    assert strict.records == len(PRODUCTS) - 1
    assert strict.counts["dropped"]["rated"]["low_agreement"] >= 1


def test_adjudicated_only_uses_the_reviewers_final_values(world: Any) -> None:
    from evalhub.reviews import services as reviews
    from evalhub.reviews.models import Adjudication

    s = factories.scenario(world)

    def rater(user: Any, prompt: str, text: str) -> dict[str, Any]:
        values = factories.material_rater(user, prompt, text)
        if user == s.annotators[0]:
            values["Quality"] = (
                1 if values["Quality"] == 5 else 5
            )  # disagrees everywhere: every item is flagged
        return values

    factories.review(s, overlap=2, rater=rater)
    first = Adjudication.objects.filter(item__output=s.outputs[(0, 0)]).get()
    reviews.adjudication_resolve(
        adjudication=first, reviewer=world.reviewer, values={"Quality": 5, "Names material": 1}
    )
    e = export(s, kind="sft", sources=("rated",), adjudicated_only=True, min_score=0.75)
    assert [r["id"] for r in rows(e)] == [f"output:{s.outputs[(0, 0)].pk}"]
    assert e.lineage["adjudications"] == [[first.pk, first.pk]]


def test_annotators_below_a_gold_accuracy_are_left_out(world: Any) -> None:
    s = factories.scenario(world)
    liar = s.annotators[2]

    def rater(user: Any, prompt: str, text: str) -> dict[str, Any]:
        values = factories.material_rater(user, prompt, text)
        if user == liar:  # rates the opposite of what it sees, gold items included
            values = {"Quality": 7 - values["Quality"], "Names material": 1 - values["Names material"]}
        return values

    factories.review(s, overlap=3, rater=rater, gold={0: {"Quality": 5, "Names material": 1}})
    # With the liar, no output has unanimous ratings; without, every material-naming one does.
    assert "agreement below the minimum" in refused(
        lambda: export(
            s, kind="sft", sources=("rated",), criteria=("Names material",), min_score=1.0, min_agreement=1.0
        )
    )
    honest = export(
        s,
        kind="sft",
        sources=("rated",),
        criteria=("Names material",),
        min_score=1.0,
        min_agreement=1.0,
        min_gold_accuracy=0.8,
    )
    assert honest.records == len(PRODUCTS) - 1  # the gold output is not training data
    assert honest.version.change_summary["excluded_annotators"] == [liar.pk]


@pytest.mark.parametrize("mode", ["drop", "weight"])
def test_reliability_drops_or_outweighs_a_contrarian(world: Any, mode: str) -> None:
    s = factories.scenario(world, n_annotators=4)
    contrarian = s.annotators[0]

    def voter(user: Any, prompt: str, a: str, b: str) -> str:
        vote = factories.material_voter(user, prompt, a, b)
        return {"a": "b", "b": "a"}.get(vote, vote) if user == contrarian else vote

    factories.arena(s, overlap=4, voter=voter)
    # Counted as everyone else, the contrarian leaves each comparison at 3 of 4 votes.
    assert "agreement below the minimum" in refused(
        lambda: export(s, kind="dpo", sources=("arena",), min_agreement=0.9)
    )
    if mode == "drop":
        e = export(
            s, kind="dpo", sources=("arena",), reliability="drop", min_reliability=0.5, min_agreement=1.0
        )
        assert e.version.change_summary["excluded_annotators"] == [contrarian.pk]
    else:  # weighted by agreement with the others (0 for the contrarian), the honest three decide
        e = export(s, kind="dpo", sources=("arena",), reliability="weight", min_agreement=0.9)
        assert e.version.change_summary["excluded_annotators"] == []
    assert e.records == len(PRODUCTS)
    assert all(names_material(r["prompt"][0]["content"], r["chosen"][0]["content"]) for r in rows(e))


def test_options_are_checked_before_anything_is_read(world: Any) -> None:
    with pytest.raises(ValidationError) as info:
        ExportOptions(kind="sft", sources=("arena",))
    assert "sources" in info.value.message_dict
    with pytest.raises(ValidationError) as info:
        ExportOptions(kind="dpo", sources=("arena",), min_agreement=1.5, reliability="sometimes")
    assert {"min_agreement", "reliability"} <= set(info.value.message_dict)


def test_id_ranges_are_compact_and_exact() -> None:
    ids = IdSet()
    ids.add(5, 3, 4, 9, None, 10, 4)
    assert ids.ranges() == [[3, 5], [9, 10]] and len(ids) == 5


def test_formats_hold_the_same_rows_and_load_with_datasets(world: Any) -> None:
    import pyarrow.parquet as pq
    from datasets import load_dataset, load_from_disk

    s = factories.scenario(world)
    factories.arena(s)
    e = export(s, kind="dpo", sources=("arena",), formats=("jsonl", "parquet", "hf"))
    jsonl = rows(e)
    loaded = load_dataset("json", data_files=str(artifact_from_key(e.files["jsonl"])), split="train")
    assert loaded.column_names[:3] == ["prompt", "chosen", "rejected"] and len(loaded) == len(jsonl)
    assert pq.read_table(artifact_from_key(e.files["parquet"])).to_pylist() == jsonl
    assert load_from_disk(str(artifact_from_key(e.files["hf"])))[0] == jsonl[0]


def test_exports_stream_without_a_model_object_per_row(world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from django.db.models import Model

    from evalhub.arena.models import Comparison, Vote
    from evalhub.generation.models import Output
    from evalhub.reviews.models import RatingValue

    s = factories.scenario(world)
    factories.review(s)
    factories.arena(s, overlap=3)
    made: list[str] = []
    original = Model.__init__

    def counting(self: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(self, (Vote, Comparison, RatingValue, Output)):
            made.append(type(self).__name__)
        original(self, *args, **kwargs)

    monkeypatch.setattr(Model, "__init__", counting)
    export(s, kind="dpo", sources=("arena", "rubric_pairs"))
    export(s, kind="sft", sources=("rated",))
    assert made == []
