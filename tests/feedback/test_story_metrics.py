"""The story and the timeline name metrics the way every other page does, story metrics first."""

from __future__ import annotations

from typing import Any

import pytest

from evalhub.feedback.selectors import metric_deltas
from tests.arena.factories import eval_with_runs
from tests.generation.factories import make_metric_run

pytestmark = pytest.mark.django_db


def test_metric_deltas_use_the_shared_labels_in_story_order(world: Any) -> None:
    ev = eval_with_runs(world.project, n_examples=4, n_versions=2)
    parent = make_metric_run(ev.runs[0], {"output_length": [60, 70, 80, 90], "bertscore": [0.5, 0.5, 0.6, 0.6],
                                          "rougeL": [0.1, 0.2, 0.2, 0.3]})
    new = make_metric_run(ev.runs[1], {"output_length": [50, 60, 70, 80], "bertscore": [0.6, 0.6, 0.7, 0.7],
                                       "rougeL": [0.2, 0.3, 0.3, 0.4]})
    deltas = metric_deltas(parent, new)
    assert [d.name for d in deltas] == ["ROUGE-L", "BERTScore", "length"]
    assert round(deltas[1].value, 6) == 0.1 and round(deltas[2].value, 6) == -10.0
    # Both intervals exclude zero; BERTScore grades (better), length only describes (shorter is not worse).
    assert deltas[1].decided and deltas[1].better is True
    assert deltas[2].decided and deltas[2].better is None and deltas[2].as_dict()["better"] is None


def test_the_timeline_colours_a_graded_change_but_not_a_length_change() -> None:
    from django.template.loader import render_to_string

    from evalhub.feedback.selectors import Delta

    html = render_to_string("feedback/_delta.html", {"d": Delta("BERTScore", 0.1, 0.05, 0.15, 4)})
    assert 'class="delta up"' in html
    html = render_to_string("feedback/_delta.html", {"d": Delta("length", -10.0, -12.0, -8.0, 4, direction=0)})
    assert 'class="delta"' in html
    html = render_to_string("feedback/_delta.html", {"d": Delta("chrF", -4.0, -8.0, -0.3, 4)})
    assert 'class="delta down"' in html
