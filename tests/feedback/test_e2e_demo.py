"""End to end on the real demo model (SmolLM2-135M-Instruct): the feedback loop moves the model where the people
pushed it.

LoRA SFT on demo products -> generate on a pool of other products -> simulated annotators who want descriptions
that name the product's material rate the outputs and judge pairs blind in the arena -> DPO export of their votes
-> retrain from feedback (DPO on top of the SFT version, generation on the held-out eval split, metrics, arena).
Then, on held-out preference pairs (eval products: the reference description vs the same text without the sentences
naming the material), the new version's implicit-reward accuracy must clearly beat the parent's, and its eval
outputs must name the material more often.

The pairs are built so the signal is learnable and nothing else differs: both sides are the same text (the
generation, or the eval reference, with its material sentences removed) opened by "Made of <material>." on one side
and by "Made with care." on the other. Eval outputs are sampled (two per prompt), so a shift of probability towards
naming the material shows in how often it is named.

To stay within a few minutes on two CPU cores the demo briefs are shortened to name, material and one instruction,
and answers to one sentence (a DPO step of the 135M model costs about as much as the tokens it sees).
"""

from __future__ import annotations

import itertools
import json
import random
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.feedback.factories import CRITERIA, version_of

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

N_EVAL, N_TRAIN, N_POOL = 12, 16, 24
MAX_NEW_TOKENS = 24
SEQ = 128
SAMPLED = {
    "do_sample": True,
    "temperature": 0.8,
    "top_p": 0.95,
    "num_samples": 2,
    "seed": 0,
    "max_new_tokens": 16,
}


def _rows() -> list[dict[str, Any]]:
    """The demo products as short briefs: product name and material, and a one-sentence reference."""
    from evalhub.demo.loader import products_path

    rows = []
    for line in products_path().read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        name = r["prompt"].split("Product: ")[1].split("\n")[0]
        first = re.split(r"(?<=[.!?])\s+", r["reference"].strip())[0]
        rows.append(
            {
                "prompt": f"Product: {name}\nMaterial: {r['material']}\nWrite a one-sentence shop description.",
                "reference": " ".join(first.split()[:24]),
                "material": r["material"],
            }
        )
    random.Random(7).shuffle(rows)
    return rows


def names(material: str, text: str) -> bool:
    return material.lower() in text.lower()


def without_material(material: str, text: str) -> str:
    """The text with every sentence naming the material dropped (or the name replaced, if nothing would be left)."""
    sentences = re.split(r"(?<=[.!?])\s+", text.strip())
    kept = [s for s in sentences if not names(material, s)]
    out = " ".join(kept) if kept else text
    return re.sub(re.escape(material), "it", out, flags=re.IGNORECASE).strip()


def minimal_pair(material: str, text: str) -> tuple[str, str]:
    """(naming the material, not naming it), identical otherwise."""
    rest = without_material(material, text)
    return f"Made of {material}. {rest}", f"Made with care. {rest}"


def test_dpo_on_material_preferences_raises_implicit_reward_accuracy_and_material_mentions(
    world: Any, django_capture_on_commit_callbacks: Any, tmp_path: Path
) -> None:
    from django.conf import settings
    from peft import PeftModel

    from evalhub.arena import services as arena
    from evalhub.arena.models import Comparison
    from evalhub.core.storage import artifact_from_key
    from evalhub.feedback import services as feedback
    from evalhub.feedback.builders import ExportOptions
    from evalhub.generation.models import Output
    from evalhub.generation.services import generation_run_create
    from evalhub.jobs.tasks import execute_job
    from evalhub.reviews import services as reviews
    from evalhub.tuning import services as tuning
    from evalhub.tuning.models import ModelVersion
    from trainer.dpo import PreferencePair, implicit_reward_accuracy
    from trainer.models import demo_model_source, load_base

    clock = {"start": time.perf_counter()}

    def lap(name: str) -> None:
        clock[name] = time.perf_counter()

    rows = _rows()
    material_of = {r["prompt"]: r["material"] for r in rows}

    def as_version(dataset: str, part: list[dict[str, Any]], split: str) -> Any:
        return version_of(
            world.project,
            dataset,
            [
                {
                    "prompt": r["prompt"],
                    "reference": r["reference"],
                    "attributes": {"material": r["material"]},
                }
                for r in part
            ],
            split=split,
        )

    eval_v = as_version("Products", rows[:N_EVAL], "eval")
    train_v = as_version("Products", rows[N_EVAL : N_EVAL + N_TRAIN], "train")
    pool_v = as_version("Feedback pool", rows[N_EVAL + N_TRAIN : N_EVAL + N_TRAIN + N_POOL], "")

    # 1. LoRA SFT on the train split.
    base = tuning.base_model_register(name="SmolLM2-135M-Instruct", source=demo_model_source())
    sft = tuning.training_run_create(
        project=world.project,
        user=world.lead,
        base_model=base,
        train_version=train_v,
        val_version=None,
        method="lora",
        placement="attention",
        hyperparameters={
            "max_steps": 4,
            "batch_size": 4,
            "rank": 8,
            "alpha": 16,
            "learning_rate": 3e-4,
            "max_seq_len": SEQ,
            "save_every_steps": 4,
            "eval_every_steps": 4,
        },
    )
    assert execute_job(sft.job.pk) == "succeeded"
    parent = ModelVersion.objects.get(training_run=sft)
    lap("sft")

    # 2. It writes descriptions for the pool of other products.
    with django_capture_on_commit_callbacks(execute=False):
        pool_run = generation_run_create(
            project=world.project,
            model_version=parent,
            eval_version=pool_v,
            settings={"max_new_tokens": MAX_NEW_TOKENS},
        )
    assert execute_job(pool_run.job.pk) == "succeeded"
    outputs = list(Output.objects.filter(run=pool_run, error="").select_related("example"))
    lap("generate")

    # 3. Annotators rate them (blind rubric campaign) ...
    rubric = reviews.rubric_create(
        project=world.project, name="Copy", criteria=CRITERIA, created_by=world.lead
    )
    review = reviews.campaign_create(
        project=world.project,
        name="Pool round",
        rubric_version=reviews.rubric_latest_version(rubric),
        sample=reviews.SampleSpec(run_ids=(pool_run.pk,)),
        overlap=1,
        created_by=world.lead,
    )
    while (a := reviews.assignment_next(campaign=review, user=world.annotator)) is not None:
        o = a.item.output
        named = names(material_of[o.example.prompt], o.text)
        reviews.rating_submit(
            campaign=review,
            user=world.annotator,
            assignment_token=a.token,
            values={"Quality": 4 if named else 2, "Names material": int(named)},
            submission_token=a.token,
        )
    # ... and judge pairs blind: each description opened with and without its material named, sides shuffled.
    pairs_file = tmp_path / "pairs.jsonl"
    with pairs_file.open("w") as fh:
        for o in outputs:
            named, plain = minimal_pair(material_of[o.example.prompt], o.text)
            fh.write(json.dumps({"prompt": o.example.prompt, "chosen": named, "rejected": plain}) + "\n")
    duel = arena.campaign_import(
        project=world.project,
        user=world.lead,
        path=pairs_file,
        display_name="material pairs",
        options=arena.CampaignOptions(name="Material", seed=1, stop_when_decided=False),
        record_labels=False,
        open_for_annotators=True,
    )
    while (a := arena.comparison_next(campaign=duel, user=world.annotator)) is not None:
        c = Comparison.objects.select_related("prompt", "left", "right").get(pk=a.comparison_id)
        material = material_of[c.prompt.text]
        choice = "a" if names(material, c.left.text) and not names(material, c.right.text) else "b"
        arena.vote_submit(campaign=duel, user=world.annotator, token=c.token, choice=choice)

    # 4. Retrain from feedback: DPO export of the votes, DPO on top of the SFT version, generate, score, arena.
    with django_capture_on_commit_callbacks(execute=True):
        p = feedback.retrain_start(
            project=world.project,
            user=world.lead,
            parent_id=parent.pk,
            eval_version=eval_v,
            mode="dpo",
            dpo_options=ExportOptions(kind="dpo", sources=("arena",), include_imported=False),
            hyperparameters={
                "dpo": {
                    "max_steps": 12,
                    "batch_size": 4,
                    "learning_rate": 5e-4,
                    "max_seq_len": SEQ,
                    "beta": 0.1,
                    "save_every_steps": 12,
                    "warmup_ratio": 0.0,
                }
            },
            decode=SAMPLED,
            metrics=["rougeL", "chrf"],
        )
    p.refresh_from_db()
    assert p.status == "succeeded", (p.error, p.log)
    assert p.dpo_export.records == len(outputs) and p.new_version.parent == parent
    lap("retrain")

    # 5. Held-out preference pairs: the eval products' references, with and without their material named.
    held_out = [
        PreferencePair(
            [{"role": "user", "content": r["prompt"]}], *minimal_pair(r["material"], r["reference"])
        )
        for r in rows[:N_EVAL]
    ]
    model, tokenizer = load_base(demo_model_source(), Path(settings.MODEL_CACHE_DIR))
    both = PeftModel.from_pretrained(model, str(artifact_from_key(parent.adapter_key)), adapter_name="parent")
    both.load_adapter(str(artifact_from_key(p.new_version.adapter_key)), adapter_name="new")
    accuracy = {}
    for name in ("parent", "new"):
        both.set_adapter(name)
        accuracy[name] = implicit_reward_accuracy(both, tokenizer, held_out, beta=0.1)

    def mention_rate(run: Any) -> float:
        texts = Output.objects.filter(run=run).select_related("example")
        return sum(names(material_of[o.example.prompt], o.text) for o in texts) / texts.count()

    rates = {"parent": mention_rate(p.parent_generation), "new": mention_rate(p.new_generation)}
    lap("evaluate")
    marks = list(clock.items())
    phases = ", ".join(f"{b[0]} {b[1] - a[1]:.0f} s" for a, b in itertools.pairwise(marks))
    print(
        f"\nimplicit-reward accuracy on {len(held_out)} held-out pairs: parent {accuracy['parent']:.2f}, "
        f"new {accuracy['new']:.2f}; eval outputs naming the material: parent {rates['parent']:.0%}, "
        f"new {rates['new']:.0%}; trained on {p.dpo_export.records} pairs from "
        f"{p.dpo_export.annotations_used} votes; {phases}"
    )
    assert accuracy["new"] >= accuracy["parent"] + 0.2
    assert rates["new"] > rates["parent"]
