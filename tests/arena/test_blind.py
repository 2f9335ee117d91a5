"""Model identity never reaches annotators: not in pages, DOM ids, URLs or API answers. Leads do see it."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

import pytest

from evalhub.arena.models import Assignment, Comparison, Contestant
from tests.arena.factories import campaign, eval_with_runs

pytestmark = pytest.mark.django_db

SECRET_NAMES = ["falcon-secret", "owl-hidden", "heron-private"]


class _Dom(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.urls: list[str] = []
        self.attrs: list[tuple[str, str]] = []
        self.side_labels: list[str] = []
        self._in_side_label = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.append(a["id"])
        for k in ("href", "action", "src"):
            if a.get(k):
                self.urls.append(a[k])
        self.attrs += [(k, v or "") for k, v in attrs]
        self._in_side_label = "side-label" in a.get("class", "")

    def handle_data(self, data: str) -> None:
        if self._in_side_label and data.strip():
            self.side_labels.append(data.strip())
            self._in_side_label = False


@pytest.fixture
def secret(world: Any) -> dict[str, Any]:
    ev = eval_with_runs(world.project, n_examples=4, n_versions=3, names=SECRET_NAMES, first_number=731)
    c = campaign(world.project, ev, criteria=("accuracy",), name="Shelf copy, round 2")
    contestants = list(Contestant.objects.filter(campaign=c))
    return {"campaign": c, "ev": ev, "contestants": contestants}


def identity_strings(s: dict[str, Any]) -> list[str]:
    ev = s["ev"]
    out = [*SECRET_NAMES, *[f"v{v.number}" for v in ev.versions], *[str(v) for v in ev.versions]]
    out += [f"run #{r.pk}" for r in ev.runs] + [f"generation run #{r.pk}" for r in ev.runs]
    out += ["model_version", "generation_run", "contestant", "external_name", "copywriter"]
    return out


def assert_blind(text: str, s: dict[str, Any], where: str) -> None:
    low = text.lower()
    for needle in identity_strings(s):
        assert needle.lower() not in low, f"{where} reveals {needle!r}"


def test_voting_page_and_dom_name_no_model(world: Any, secret: dict[str, Any], client_for: Any) -> None:
    c = secret["campaign"]
    client = client_for(world.annotator)
    base = f"/p/{world.project.pk}/arena/"
    pages = {name: client.get(url) for name, url in {
        "overview": f"/p/{world.project.pk}/", "list": base, "detail": f"{base}{c.pk}/", "vote": f"{base}{c.pk}/vote/",
        "overview after serving": f"/p/{world.project.pk}/"}.items()}
    for name, r in pages.items():
        assert r.status_code == 200
        assert_blind(r.content.decode(), secret, name)
    html = pages["vote"].content.decode()
    dom = _Dom()
    dom.feed(html)
    assert dom.side_labels == ["A", "B"]
    # Element ids are fixed words, none carries a number that could be an output, run or version id.
    assert set(dom.ids) <= {"prompt-title", "response-a", "response-b", "label-a", "label-b", "vote-form", "seconds",
                            "criteria", "reason", "btn-a", "btn-b", "btn-tie", "btn-both_bad", "btn-skip",
                            "help-dialog", "help-title"}
    assert not [i for i in dom.ids if re.search(r"\d", i)]
    # Every URL on the page is a site page (project and campaign ids only) or a static file.
    for url in dom.urls:
        assert url.startswith(("/static/", "/p/", "/api/docs/", "/projects/", "/logout/", "/")), url
        nums = set(re.findall(r"\d+", url.split("?")[0])) - {str(world.project.pk), str(c.pk)}
        assert not nums or url.startswith("/static/"), url
    # The comparison is named by its random token only; the output ids behind it are nowhere.
    assignment = Assignment.objects.get(annotator=world.annotator)
    comp = Comparison.objects.get(pk=assignment.comparison_id)
    assert f'value="{comp.token}"' in html
    # Form values and data attributes carry no number either (outputs, runs and versions are numbered).
    parser_values = [(k, v) for k, v in dom.attrs if k in ("value", "name") or k.startswith("data-")]
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    random_values = {comp.token, csrf.group(1) if csrf else ""}
    numbered = [(k, v) for k, v in parser_values
                if re.search(r"\d", v) and v not in random_values and not re.fullmatch(r"crit-\d+", v)
                and not (k == "value" and v == "0") and not (k == "data-keys" and re.fullmatch(r"[1-4][abtx]", v))]
    assert not numbered, numbered

def test_api_answers_to_annotators_name_no_model(world: Any, secret: dict[str, Any], api_for: Any) -> None:
    c = secret["campaign"]
    api = api_for(world.annotator)
    base = f"/api/projects/{world.project.pk}/arena/campaigns/"
    nxt = api.get(f"{base}{c.pk}/next/")
    assert nxt.status_code == 200
    body = nxt.json()
    assert set(body["comparison"]) == {"token", "prompt", "a", "b", "criteria", "expires_at"}
    assert set(body["comparison"]["a"]) == {"text"} and set(body["comparison"]["prompt"]) == {"turns", "attributes"}
    token = body["comparison"]["token"]
    answers = {
        "next": nxt,
        "list": api.get(base),
        "detail": api.get(f"{base}{c.pk}/"),
        "vote": api.post(f"{base}{c.pk}/votes/", {"comparison": token, "choice": "a"}, format="json"),
        "vote-again": api.post(f"{base}{c.pk}/votes/", {"comparison": token, "choice": "b"}, format="json"),
        "next-2": api.get(f"{base}{c.pk}/next/"),
    }
    for name, r in answers.items():
        assert r.status_code < 500
        assert_blind(json.dumps(r.json()), secret, name)
    # Annotators cannot reach the leaderboard or the statistics that name the versions.
    assert api.get(f"{base}{c.pk}/leaderboard/").status_code == 403
    assert api.get(f"{base}{c.pk}/annotators/").status_code == 403


def test_leads_see_the_names(world: Any, secret: dict[str, Any], client_for: Any, api_for: Any) -> None:
    c = secret["campaign"]
    page = client_for(world.lead).get(f"/p/{world.project.pk}/arena/{c.pk}/").content.decode()
    assert all(n in page for n in SECRET_NAMES)
    lb = api_for(world.lead).get(f"/api/projects/{world.project.pk}/arena/campaigns/{c.pk}/leaderboard/").json()
    assert [x["name"] for x in lb["contestants"]] == [f"v{731 + i} {n}" for i, n in enumerate(SECRET_NAMES)]


def test_reviewers_are_blind_too(world: Any, secret: dict[str, Any], client_for: Any) -> None:
    c = secret["campaign"]
    client = client_for(world.reviewer)
    for url in (f"/p/{world.project.pk}/", f"/p/{world.project.pk}/arena/", f"/p/{world.project.pk}/arena/{c.pk}/",
                f"/p/{world.project.pk}/arena/{c.pk}/vote/"):
        assert_blind(client.get(url).content.decode(), secret, url)
    assert client.get(f"/p/{world.project.pk}/arena/{c.pk}/leaderboard/").status_code == 403


def test_imported_pairs_do_not_reveal_which_side_was_chosen(world: Any, client_for: Any, tmp_path: Any) -> None:
    from evalhub.arena import services

    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(json.dumps({"prompt": f"Q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"})
                              for i in range(6)))
    c = services.campaign_import(project=world.project, user=world.lead, path=path, display_name="p.jsonl",
                                 options=services.CampaignOptions(name="Imported"), chosen_name="gpt-chosen-src",
                                 rejected_name="rejected-src", open_for_annotators=True)
    client = client_for(world.annotator)
    html = client.get(f"/p/{world.project.pk}/arena/{c.pk}/vote/").content.decode()
    assert "gpt-chosen-src" not in html and "rejected-src" not in html and "p.jsonl" not in html
    assert re.search(r"good \d|bad \d", html)
