"""Optuna sweeps: trials as child runs, median pruning on intermediate validation loss, best trial promotion."""

from __future__ import annotations

import math
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from evalhub.jobs.models import Job
from evalhub.jobs.tasks import execute_job
from evalhub.tuning import services
from evalhub.tuning.models import ModelVersion, Sweep, TrialState

pytestmark = pytest.mark.django_db

SWEEP_HP = {
    "max_steps": 9,
    "batch_size": 4,
    "eval_every_steps": 3,
    "save_every_steps": 3,
    "max_seq_len": 128,
    "placement": "attention",
}


def create(world: Any, base: Any, versions: Any, **overrides: Any) -> Sweep:
    kwargs: dict[str, Any] = {
        "project": world.project,
        "user": world.lead,
        "name": "lr search",
        "base_model": base,
        "train_version": versions[0],
        "val_version": versions[1],
        "method": "lora",
        "hyperparameters": SWEEP_HP,
        "search_space": {
            "learning_rate": {"low": 1e-7, "high": 2e-2, "log": True},
            "rank": {"choices": [2, 4]},
        },
        "n_trials": 3,
        "seed": 0,
        "pruner_startup_trials": 2,
        # Two good learning rates first, then one far too small: its validation loss stays near the start,
        # above the median of the first two at their first evaluation, so the median pruner stops it.
        "initial_trials": [
            {"learning_rate": 1e-2, "rank": 4},
            {"learning_rate": 5e-3, "rank": 2},
            {"learning_rate": 1e-7, "rank": 4},
        ],
    }
    kwargs.update(overrides)
    return services.sweep_create(**kwargs)


def test_sweep_runs_trials_prunes_the_bad_one_and_promotes_the_best(
    world: Any, tiny_base: Any, versions: Any
) -> None:
    sweep = create(world, tiny_base, versions)
    assert sweep.job.queue == "gpu"
    assert execute_job(sweep.job.pk) == "succeeded"
    sweep.refresh_from_db()
    trials = {t.trial_number: t for t in sweep.trials.all()}
    assert sorted(trials) == [0, 1, 2]
    assert [trials[n].trial_state for n in (0, 1, 2)] == [
        TrialState.COMPLETE,
        TrialState.COMPLETE,
        TrialState.PRUNED,
    ]
    assert trials[2].config["learning_rate"] == 1e-7
    pruned_steps = [p["step"] for p in trials[2].loss_history if "train_loss" in p]
    assert max(pruned_steps) < 9, "a pruned trial stops before its last step"
    assert trials[2].result["pruned_at"]["step"] == 3
    best = min((trials[0], trials[1]), key=lambda r: r.result["best_val_loss"])
    assert sweep.best_run == best
    assert sweep.result["best_value"] == pytest.approx(best.result["best_val_loss"])
    assert (sweep.result["n_complete"], sweep.result["n_pruned"]) == (2, 1)
    assert set(sweep.result["importance"]) <= {"learning_rate", "rank"}
    assert not ModelVersion.objects.exists(), "trials do not become versions until promoted"

    version = services.sweep_promote_best(sweep, user=world.lead)
    assert version.training_run == best and version.lineage["sweep"] == sweep.pk
    assert services.sweep_promote_best(sweep) == version  # promoting twice gives the same version


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"search_space": {"rank": {"low": 0, "high": 8}}}, "search_space", "rank=0"),
        (
            {"search_space": {"learning_rate": {"low": -1, "high": 1e-3}}},
            "search_space",
            "learning_rate=-1.0",
        ),
        ({"search_space": {"dropout": {"low": 0, "high": 0.1}}}, "search_space", "cannot be searched"),
        (
            {"search_space": {"placement": {"choices": ["attention", "query_key_value"]}}},
            "search_space",
            "no module named 'query_key_value'",
        ),
        (
            {"search_space": {"rank": {"choices": [4, 8]}}, "method": "ia3"},
            "search_space",
            "only LoRA-family",
        ),
        ({"val_version": None}, "val_version", "validation version"),
        ({"initial_trials": [{"epochs": 2}]}, "initial_trials", "searched parameters"),
    ],
)
def test_bad_sweep_is_refused_naming_the_field(
    world: Any, tiny_base: Any, versions: Any, overrides: dict[str, Any], field: str, words: str
) -> None:
    jobs = Job.objects.count()
    overrides.setdefault("initial_trials", [])
    with pytest.raises(ValidationError) as info:
        create(world, tiny_base, versions, **overrides)
    errors = info.value.message_dict
    assert field in errors and any(words in m for m in errors[field]), errors
    assert Job.objects.count() == jobs and not Sweep.objects.exists()


def test_parameter_importance_needs_enough_trials_and_finds_the_parameter_that_matters() -> None:
    import optuna

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("learning_rate", 1e-5, 1e-2, log=True)
        trial.suggest_categorical("rank", [4, 8, 16])  # irrelevant to the objective
        return (math.log10(lr) + 3.5) ** 2

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=services.MIN_TRIALS_FOR_IMPORTANCE - 1)
    assert services.param_importance(study) == {}, "too few trials to rank parameters"
    study.optimize(objective, n_trials=20)
    importance = services.param_importance(study)
    assert importance["learning_rate"] > importance["rank"]
