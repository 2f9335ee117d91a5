"""Plotly figures (as JSON) for the tuning pages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from evalhub.core.charts import figure_json, lines
from evalhub.tuning.models import TrainingRun

STATE_COLOURS = {"complete": "#2454c5", "pruned": "#b06000", "failed": "#b3261e", "running": "#9aa0a6"}


def loss_chart(series: dict[str, Any]) -> dict[str, Any]:
    """Train and validation loss of one run. Trace order (train, validation) is what the page's poller updates."""
    return lines(
        {
            "train": (series["train"]["x"], series["train"]["y"]),
            "validation": (series["val"]["x"], series["val"]["y"]),
        },
        title="Loss",
        xaxis_title="step",
        yaxis_title="loss",
    )


def _val_curve(run: TrainingRun) -> tuple[list[int], list[float]]:
    points = [p for p in run.loss_history or [] if "val_loss" in p]
    return [p["step"] for p in points], [p["val_loss"] for p in points]


def comparison_charts(runs: Sequence[TrainingRun]) -> dict[str, dict[str, Any]]:
    names = [f"#{r.pk} {r.name}" for r in runs]
    short = [
        f"#{r.pk} {r.method}" for r in runs
    ]  # axis labels; the table beside the charts has the full names
    results = [r.result or {} for r in runs]
    best = [res.get("best_val_loss") for res in results]
    share = [100 * (res.get("trainable_share") or 0) for res in results]
    memory = [(res.get("peak_memory_bytes") or 0) / 2**20 for res in results]
    speed = [res.get("tokens_per_s") or 0 for res in results]
    trade_off = go.Figure(
        go.Scatter(
            x=share,
            y=best,
            mode="markers+text",
            text=[r.method for r in runs],
            textposition="top center",
            hovertext=names,
            marker={"size": 11},
        )
    )
    return {
        # Dots, not bars: losses of competing runs differ in the second decimal, which bars from 0 would hide.
        "val_loss": figure_json(
            go.Figure(go.Scatter(x=short, y=best, mode="markers", marker={"size": 12}, hovertext=names)),
            title="Best validation loss (lower is better)",
        ),
        "trade_off": figure_json(
            trade_off,
            title="Trainable parameters vs best validation loss",
            xaxis={"title": {"text": "trainable parameters (% of the model)"}, "type": "log"},
            yaxis={"title": {"text": "best validation loss"}},
        ),
        "memory": figure_json(
            go.Figure(go.Bar(x=short, y=memory, hovertext=names)), title="Peak memory (MiB)"
        ),
        "speed": figure_json(
            go.Figure(go.Bar(x=short, y=speed, hovertext=names)), title="Throughput (tokens/s)"
        ),
        "curves": lines(
            {name: _val_curve(r) for name, r in zip(names, runs)},
            title="Validation loss during training",
            xaxis_title="step",
        ),
    }


def sweep_charts(trials: Sequence[TrainingRun], importance: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Objective per trial (pruned trials at their last reported value), the trials' validation curves, and
    parameter importance."""
    objective = go.Figure()
    for state, colour in STATE_COLOURS.items():
        picked = [t for t in trials if t.trial_state == state]
        if not picked:
            continue
        values = [
            (t.result or {}).get("best_val_loss") if state == "complete" else (_val_curve(t)[1] or [None])[-1]
            for t in picked
        ]
        objective.add_trace(
            go.Scatter(
                x=[t.trial_number for t in picked],
                y=values,
                mode="markers",
                name=state,
                marker={"color": colour, "size": 11},
                hovertext=[t.name for t in picked],
            )
        )
    complete = sorted((t for t in trials if t.trial_state == "complete"), key=lambda t: t.trial_number or 0)
    running_best: list[float] = []
    for t in complete:
        value = (t.result or {}).get("best_val_loss")
        if value is not None:
            running_best.append(min(running_best[-1], value) if running_best else value)
    if running_best:
        objective.add_trace(
            go.Scatter(
                x=[t.trial_number for t in complete][: len(running_best)],
                y=running_best,
                mode="lines",
                name="best so far",
                line={"shape": "hv", "color": "#137333"},
            )
        )
    charts = {
        "objective": figure_json(
            objective, title="Validation loss per trial", xaxis_title="trial", yaxis_title="validation loss"
        ),
        "curves": lines(
            {f"trial {t.trial_number} ({t.trial_state})": _val_curve(t) for t in trials},
            title="Intermediate validation loss (what the pruner sees)",
            xaxis_title="step",
        ),
    }
    if importance:
        ordered = sorted(importance.items(), key=lambda kv: kv[1])
        charts["importance"] = figure_json(
            go.Figure(go.Bar(x=[v for _, v in ordered], y=[k for k, _ in ordered], orientation="h")),
            title="Parameter importance (Optuna)",
        )
    return charts
