"""Importing preference files as campaigns: sources, stored labels, atomicity, errors with file and line."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from evalhub.arena import selectors, services
from evalhub.arena.models import Campaign, Candidate, Comparison, Prompt, Vote
from evalhub.arena.preferences import PreferenceImportError

pytestmark = pytest.mark.django_db

HH = [
    {"chosen": "\n\nHuman: Describe the oak shelf.\n\nAssistant: Solid oak, hand-oiled, holds 40 kg.",
     "rejected": "\n\nHuman: Describe the oak shelf.\n\nAssistant: It is a shelf.", "split": "helpful"},
    {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Price?\n\nAssistant: 89 euros.",
     "rejected": "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Price?\n\nAssistant: Cheap.", "split": "helpful"},
]
TRL = [{"prompt": f"Describe item {i}.", "chosen": f"Item {i}: walnut, 2 m.", "rejected": f"Item {i}.",
        "split": "catalogue"} for i in range(4)]


def jsonl(records: list[Any]) -> bytes:
    return ("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n").encode()


def counts() -> tuple[int, ...]:
    return tuple(m.objects.count() for m in (Campaign, Prompt, Candidate, Comparison, Vote))


def test_pairs_become_two_sources_with_the_files_judgement_as_votes(world: Any, tmp_path: Path) -> None:
    path = tmp_path / "hh.jsonl"
    path.write_bytes(jsonl(HH + TRL))
    c = services.campaign_import(project=world.project, user=world.lead, path=path, display_name="hh.jsonl",
                                 options=services.CampaignOptions(name="HH sample", seed=1))
    assert c.kind == "imported" and c.status == "closed" and c.source_name == "hh.jsonl"
    assert [x.label for x in selectors.contestants(c)] == ["chosen", "rejected"]
    assert Comparison.objects.filter(campaign=c).count() == 6
    first = Prompt.objects.filter(campaign=c).order_by("source_line").first()
    assert first.text == "\n\nHuman: Describe the oak shelf.\n\nAssistant:" and first.source_line == 1
    assert first.turns() == [{"role": "user", "content": "Describe the oak shelf."}]
    assert first.attributes == {"split": "helpful"}
    # Every imported vote names the chosen text as the winner, whatever side it was shuffled to.
    pairs = list(selectors.preference_pairs([c]))
    assert len(pairs) == 6 and {p["origin"] for p in pairs} == {"import"}
    by_prompt = {p["prompt_text"]: p for p in pairs}
    oak = by_prompt["\n\nHuman: Describe the oak shelf.\n\nAssistant:"]
    assert (oak["chosen"], oak["rejected"]) == ("Solid oak, hand-oiled, holds 40 kg.", "It is a shelf.")
    assert by_prompt["Describe item 2."]["chosen"] == "Item 2: walnut, 2 m."
    sides = {Comparison.objects.get(token=p["comparison"]).left.contestant.label for p in pairs}
    assert sides == {"chosen", "rejected"}  # sides are shuffled for blind re-judging


def test_team_votes_on_imported_pairs_are_compared_with_the_file(world: Any, tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(jsonl(TRL))
    c = services.campaign_import(project=world.project, user=world.lead, path=path, display_name="p.jsonl",
                                 options=services.CampaignOptions(name="Blind re-judge"), open_for_annotators=True)
    for _ in range(4):
        a = services.comparison_next(campaign=c, user=world.annotator)
        chosen_left = a.comparison.left.contestant.external_name == "chosen"
        services.vote_submit(campaign=c, user=world.annotator, token=a.comparison.token,
                             choice="a" if chosen_left else "b")
    lb = selectors.leaderboard(c)
    assert lb.n_import_votes == 4 and lb.board.n_votes == 4  # the file's labels are not counted as votes
    assert lb.external_agreement.value == 1.0 and lb.external_agreement.n == 4


def test_a_bad_line_stores_nothing_and_names_file_and_line(world: Any, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(jsonl([*TRL, {"prompt": "x", "chosen": "same", "rejected": "same"}, {"prompt": "y"}]))
    before = counts()
    with pytest.raises(PreferenceImportError) as info:
        services.campaign_import(project=world.project, user=world.lead, path=path, display_name="bad.jsonl",
                                 options=services.CampaignOptions(name="Bad"))
    assert [str(e).split(":")[0] for e in info.value.errors] == [
        'bad.jsonl, line 5, field "rejected"', 'bad.jsonl, line 6, field "chosen"', 'bad.jsonl, line 6, field "rejected"']
    assert counts() == before


def test_a_failure_while_storing_rolls_everything_back(world: Any, tmp_path: Path, monkeypatch: Any) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(jsonl(TRL))
    monkeypatch.setattr(services, "BATCH_SIZE", 2)
    calls = {"n": 0}
    original = services._import_chunk

    def fail_on_second(*args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        original(*args, **kwargs)

    monkeypatch.setattr(services, "_import_chunk", fail_on_second)
    before = counts()
    with pytest.raises(RuntimeError):
        services.campaign_import(project=world.project, user=world.lead, path=path, display_name="p.jsonl",
                                 options=services.CampaignOptions(name="Half"))
    assert calls["n"] == 2 and counts() == before


def test_import_page_and_api(world: Any, client_for: Any, api_for: Any) -> None:
    form = {"name": "HH", "chosen_name": "chosen", "rejected_name": "rejected", "record_labels": "on", "overlap": 1,
            "scheduling": "uniform", "confidence": 0.95, "min_votes_to_decide": 20, "both_bad_as": "tie",
            "claim_minutes": 30}
    client = client_for(world.lead)
    url = f"/p/{world.project.pk}/arena/import/"
    ok = client.post(url, {**form, "file": io.BytesIO(jsonl(HH))}, format="multipart")
    assert ok.status_code == 302 and Campaign.objects.count() == 1
    bad_file = io.BytesIO(jsonl([HH[0], {"chosen": HH[0]["chosen"], "rejected": HH[0]["chosen"]}]))
    bad_file.name = "prefs.jsonl"
    bad = client.post(url, {**form, "file": bad_file})
    assert bad.status_code == 400
    assert "prefs.jsonl, line 2, field &quot;rejected&quot;: is identical to &quot;chosen&quot;" in bad.content.decode()
    assert Campaign.objects.count() == 1

    api = api_for(world.lead)
    api_url = f"/api/projects/{world.project.pk}/arena/campaigns/import/"
    f = io.BytesIO(jsonl(TRL))
    f.name = "trl.jsonl"
    r = api.post(api_url, {"name": "TRL", "file": f, "open_for_annotators": True}, format="multipart")
    assert r.status_code == 201 and r.json()["n_pairs"] == 4 and r.json()["status"] == "open"
    g = io.BytesIO(jsonl([{"prompt": "p", "chosen": "a"}]))
    g.name = "missing.jsonl"
    r = api.post(api_url, {"name": "Missing", "file": g}, format="multipart")
    assert r.status_code == 400
    assert r.json()["errors"][0] == {"file": "missing.jsonl", "line": 1, "field": "rejected", "message": "is missing",
                                     "unit": "line", "text": 'missing.jsonl, line 1, field "rejected": is missing'}
    assert Campaign.objects.count() == 2
    # Annotators may not import.
    h = io.BytesIO(jsonl(TRL))
    h.name = "x.jsonl"
    assert api_for(world.annotator).post(api_url, {"name": "No", "file": h}, format="multipart").status_code == 403


def test_arena_votes_export_as_preference_pairs(world: Any, ev: Any) -> None:
    from tests.arena.factories import campaign

    c = campaign(world.project, ev, stop_when_decided=False)
    results = []
    for choice in ("a", "b", "tie", "both_bad"):
        a = services.comparison_next(campaign=c, user=world.annotator)
        services.vote_submit(campaign=c, user=world.annotator, token=a.comparison.token, choice=choice)
        results.append((a.comparison, choice))
    pairs = {p["comparison"]: p for p in selectors.preference_pairs(Campaign.objects.filter(pk=c.pk))}
    assert len(pairs) == 2  # ties and "both bad" are not preferences
    for comp, choice in results[:2]:
        comp = Comparison.objects.select_related("left__output", "right__output", "prompt__example").get(pk=comp.pk)
        p = pairs[comp.token]
        winner, loser = (comp.left, comp.right) if choice == "a" else (comp.right, comp.left)
        assert (p["chosen"], p["rejected"]) == (winner.output.text, loser.output.text)
        assert p["prompt_text"] == comp.prompt.example.prompt and p["annotator_id"] == world.annotator.pk
        assert p["chosen_contestant"] == winner.contestant_id
