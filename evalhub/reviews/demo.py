"""Demo step of the reviews stage: the "Content writing" rubric, a blind campaign over the outputs of both demo
generation runs, and part of the work done, so the lead's results and agreement pages have numbers to show.

annotator2 rates about half of the items, with ratings a copywriter might give: derived from each output (does it
name the product's material, does it invent numbers that are not in the brief, does it finish its last sentence,
does it use stock phrases) plus a little seeded noise, and corrects one output. annotator1's queue is left untouched:
a visitor logs in as annotator1 and rates, and since both annotators are served items in the same order, the items
annotator1 rates first are the ones annotator2 already rated, so agreement figures appear from the first ratings on.

Idempotent: the campaign is found by name, and annotator2 only rates until their share is reached.
"""

from __future__ import annotations

import math
import random
import re
import zlib
from typing import Any, TextIO

from evalhub.datasets.models import Example
from evalhub.generation.demo import demo_generation_runs
from evalhub.generation.models import Output
from evalhub.projects.models import Project
from evalhub.reviews import services
from evalhub.reviews.models import Campaign, Correction, Criterion, Rating, Scale

TEMPLATE = "content"
CAMPAIGN_NAME = "Product descriptions · content review"
RATER = "annotator2"
ANNOTATORS = ("annotator1", "annotator2")
OVERLAP = 2
RATED_SHARE = 0.5
GUIDELINES = """\
You rate product descriptions written for our online shop. Each one answers the brief shown above it. You do not
see which model wrote it; rate the text as a customer would read it on the product page.

**Accuracy** counts double. Every fact must come from the brief: a number, feature, warranty or certification that
is not in the brief is an invented claim, even when it sounds plausible.

**Relevance**: it is about this product and speaks to the audience named in the brief.

**Creativity**: wording a reader wants to finish. Stock phrases ("elevate your", "look no further", "must-have")
score low.

**Tone**: *On brand* when it matches the tone the brief asks for (playful, premium or practical).

If a small edit makes a description publishable (a wrong number, the missing material, an unfinished last
sentence), make it in the text box: corrected descriptions become training data. Do not rewrite from scratch; rate
the text as it was written, not your correction.
"""

STOCK_PHRASES = (
    "elevate your",
    "look no further",
    "game-changer",
    "game changer",
    "must-have",
    "unleash",
    "next level",
    "state-of-the-art",
    "boasts",
)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


# --------------------------------------------------------------------------------------------------------------------
# A simulated copywriter


def _brief_field(prompt: str, name: str) -> str:
    match = re.search(rf"^{name}:\s*(.+)$", prompt, flags=re.MULTILINE)
    return match.group(1).strip() if match else ""


def _noise(text: str, salt: str) -> int:
    """-1, 0 or +1, mostly 0, the same for the same text on every machine."""
    return random.Random(zlib.crc32(f"{salt}\n{text}".encode())).choice((-1, 0, 0, 0, 1))


def _clamp(value: int, levels: int) -> int:
    return max(1, min(levels, value))


def judge(text: str, prompt: str, material: str) -> tuple[dict[str, Any], str]:
    """{criterion name: value} for the content rubric, and a comment (often empty), for one description."""
    lower = text.lower()
    words = len(text.split())
    names_material = bool(material) and material.lower() in lower
    product = _brief_field(prompt, "Product")
    names_product = any(w.lower() in lower for w in product.split() if len(w) > 3)
    invented = sorted(set(_NUMBER.findall(text)) - set(_NUMBER.findall(prompt)))
    stock = [p for p in STOCK_PHRASES if p in lower]
    finished = text.rstrip().endswith((".", "!", "?", '"', "”"))

    accuracy = 3 + names_material - min(2, len(invented)) + (words >= 40 and not invented)
    relevance = 2 + names_material + names_product + (words >= 30)
    creativity = 3 - bool(stock) - (not finished) + (50 <= words <= 110)
    if stock or text.count("!") >= 2:
        tone = "Pushy"
    else:
        asked = _brief_field(prompt, "Tone").lower()
        drift = "Too casual" if asked == "premium" else "Too formal" if asked == "playful" else "Too casual"
        tone = drift if _noise(text, "tone") < 0 else "On brand"
    values = {
        "Accuracy": accuracy + _noise(text, "accuracy"),
        "Relevance": relevance + _noise(text, "relevance"),
        "Creativity": creativity + _noise(text, "creativity"),
        "Tone": tone,
    }
    notes = []
    if invented:
        notes.append(f"{', '.join(invented[:3])} is not in the brief.")
    if not names_material and material:
        notes.append(f"Never says it is {material}.")
    if not finished:
        notes.append("Stops mid-sentence.")
    if stock:
        notes.append(f"Stock phrase: “{stock[0]}”.")
    return values, " ".join(notes)


def corrected(text: str, material: str) -> str:
    """A copywriter's small fix: drop an unfinished last sentence and name the material if the text does not."""
    sentences = _SENTENCE_END.split(text.strip())
    if len(sentences) > 1 and not sentences[-1].rstrip().endswith((".", "!", "?")):
        sentences = sentences[:-1]
    fixed = " ".join(sentences).strip()
    if material and material.lower() not in fixed.lower():
        fixed = f"{fixed} Made from {material}.".strip()
    return fixed


def _values_for(criteria: list[Criterion], judged: dict[str, Any]) -> dict[str, Any]:
    """The judged values on the campaign's criteria (a lead may have edited the copy of the template: criteria
    judge() does not know get their middle level or first label)."""
    values: dict[str, Any] = {}
    for c in criteria:
        if c.scale == Scale.LIKERT:
            values[c.name] = _clamp(int(judged.get(c.name, (c.levels + 1) // 2)), c.levels)
        elif c.scale == Scale.BINARY:
            values[c.name] = 1
        elif c.scale == Scale.CATEGORICAL:
            label = judged.get(c.name)
            values[c.name] = label if label in c.options else c.options[0]
        elif c.scale == Scale.MULTILABEL:
            values[c.name] = [c.options[0]]
        elif c.required:
            values[c.name] = "Reads well."
    return values


# --------------------------------------------------------------------------------------------------------------------
# The step


def _campaign(project: Project, users: dict[str, Any], runs: list[Any]) -> tuple[Campaign, bool]:
    campaign = Campaign.objects.filter(project=project, name=CAMPAIGN_NAME).order_by("pk").first()
    if campaign is not None:
        return campaign, False
    rubric = services.rubric_copy_template(project=project, template=TEMPLATE, created_by=users["lead"])
    campaign = services.campaign_create(
        project=project,
        name=CAMPAIGN_NAME,
        rubric_version=services.rubric_latest_version(rubric),
        sample=services.SampleSpec(run_ids=tuple(r.pk for r in runs), seed=0),
        created_by=users["lead"],
        overlap=OVERLAP,
        annotator_ids=[users[name].pk for name in ANNOTATORS],
        guidelines=GUIDELINES,
    )
    return campaign, True


def simulate_ratings(
    campaign: Campaign, user: Any, *, share: float = RATED_SHARE, max_corrections: int | None = 1
) -> tuple[int, int]:
    """Rate as `user` until they rated `share` of the items, correcting the first `max_corrections` outputs that
    need a fix (None: every one). Returns (ratings made now, their ratings in all)."""
    target = math.ceil(campaign.item_count * share)
    done = Rating.objects.filter(campaign=campaign, annotator=user).count()
    n_corrected = Correction.objects.filter(item__campaign=campaign, rating__annotator=user).count()
    criteria = services.campaign_criteria(campaign)
    made = 0
    while done < target:
        assignment = services.assignment_next(campaign=campaign, user=user)
        if assignment is None:
            break
        output: Output = assignment.item.output
        # Read from the table: on PostgreSQL the queue's fast path hands back a partial example (no attributes).
        example = Example.objects.get(pk=output.example_id)
        material = str((example.attributes or {}).get("material") or "")
        judged, comment = judge(output.text, example.prompt_text, material)
        fix: str | None = None
        may_correct = max_corrections is None or n_corrected < max_corrections
        if may_correct and corrected(output.text, material) != output.text.strip():
            fix = corrected(output.text, material)
            comment = f"{comment} Fixed it in the text.".strip()
            n_corrected += 1
        words = len(output.text.split())
        services.rating_submit(
            campaign=campaign,
            user=user,
            assignment_token=assignment.token,
            values=_values_for(criteria, judged),
            comment=comment,
            corrected_text=fix,
            seconds_on_item=25 + 0.5 * words + (zlib.crc32(output.text.encode()) % 40),
            submission_token=f"demo-{assignment.token}",
        )
        done += 1
        made += 1
    return made, done


def reviews_step(
    project: Project, users: dict[str, Any], stdout: TextIO, state: dict[str, Any] | None = None
) -> str:
    runs = demo_generation_runs(project, state)
    campaign = Campaign.objects.filter(project=project, name=CAMPAIGN_NAME).order_by("pk").first()
    if campaign is None and len(runs) < 2:
        # A campaign is never changed once made: made over v1 alone, it would stay without v2 for good.
        return "skipped: needs the generation runs of both v1 base and v2 LoRA"
    campaign, made = _campaign(project, users, runs)
    if made:
        stdout.write(
            f"    “{campaign.name}”: {campaign.item_count} outputs, {OVERLAP} ratings wanted for each\n"
        )
    rated_now, rated = simulate_ratings(campaign, users[RATER])
    corrections = Correction.objects.filter(item__campaign=campaign).count()
    what = (
        f"{'created' if made else 'found'} “{campaign.name}” ({campaign.item_count} items, overlap {OVERLAP})"
    )
    return (
        f"{what}; {RATER} rated {rated} ({rated_now} now), {corrections} correction(s); "
        f"annotator1's queue is open"
    )


def _step(ctx: Any) -> str:
    return reviews_step(ctx.project, ctx.users, ctx.stdout, ctx.state)


try:
    from evalhub.demo.loader import register_step
except ImportError:  # the demo app is optional; the functions above still work on their own
    pass
else:
    register_step("reviews: content rubric campaign, annotator2 halfway", _step)
