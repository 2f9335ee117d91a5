"""Every URL of the site and the API, tried as anonymous, outsider, annotator, reviewer and lead.

Adding a URL without describing who may use it (tests/access/<app>.py) makes `test_every_url_has_a_rule` fail.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

import tests.access
from tests.access.rules import ROLE_ORDER, Rule

SKIP_NAMESPACES = {"admin", "rest_framework"}  # Django admin is staff-only (tested below); DRF's own login pages


def _modules() -> list[Any]:
    return [
        importlib.import_module(f"tests.access.{m.name}")
        for m in pkgutil.iter_modules(tests.access.__path__)
        if m.name not in {"rules"}
    ]


def _rules_with_modules() -> dict[str, tuple[Rule, Any]]:
    rules: dict[str, tuple[Rule, Any]] = {}
    for module in _modules():
        for name, rule in getattr(module, "RULES", {}).items():
            assert name not in rules, f"{name} described twice"
            rules[name] = (rule, module)
    return rules


def all_rules() -> dict[str, Rule]:
    return {name: rule for name, (rule, _) in _rules_with_modules().items()}


def url_names() -> set[str]:
    names: set[str] = set()

    def walk(patterns: list[URLPattern | URLResolver], namespace: str | None) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                ns = p.namespace or namespace
                if ns in SKIP_NAMESPACES:
                    continue
                walk(p.url_patterns, f"{namespace}:{p.namespace}" if namespace and p.namespace else ns)
            elif p.name:
                names.add(f"{namespace}:{p.name}" if namespace else p.name)
            else:
                raise AssertionError(f"unnamed URL pattern {p.pattern}: name it so it can be described")

    walk(get_resolver().url_patterns, None)
    return names


def test_every_url_has_a_rule() -> None:
    names = url_names()
    rules = all_rules()
    missing = sorted(names - set(rules))
    stale = sorted(set(rules) - names)
    assert not missing, f"URLs without an access rule in tests/access/: {missing}"
    assert not stale, f"rules for URLs that no longer exist: {stale}"


CASES = [(name, who) for name in sorted(all_rules()) for who in ["anonymous", "outsider", *ROLE_ORDER]]


def _rule_and_objects(name: str, world: Any) -> tuple[Rule, dict[str, Any]]:
    """The rule and the objects its own module builds (modules may reuse names like "campaign")."""
    rule, module = _rules_with_modules()[name]
    return rule, (module.objects(world) if hasattr(module, "objects") else {})


def _call(client: Any, method: str, url: str, data: dict[str, Any] | None, is_api: bool) -> Any:
    fn = getattr(client, method.lower())
    if is_api:
        return fn(url, data or {}, format="json")
    return fn(url, data or {})


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "who"), CASES)
def test_access(name: str, who: str, world: Any, client_for: Any, api_for: Any) -> None:
    rule, objs = _rule_and_objects(name, world)
    kwargs = rule.kwargs(world, objs)
    url = reverse(name, kwargs=kwargs)
    is_api = url.startswith("/api/")
    user = None if who == "anonymous" else world.user(who)
    client = api_for(user) if is_api else client_for(user)

    for method in rule.methods:
        response = _call(client, method, url, rule.data, is_api)
        status = response.status_code
        where = f"{method} {url} as {who}"
        assert status < 500, f"{where}: server error {status}"
        if rule.min_role == "public":
            assert status not in (401, 403, 404), f"{where}: public URL refused ({status})"
            continue
        if who == "anonymous":
            if is_api:
                assert status in (401, 403), f"{where}: anonymous API call got {status}"
            else:
                assert status == 302 and "/login/" in response["Location"], f"{where}: anonymous not sent to login ({status})"
            continue
        if rule.min_role == "login":
            assert status not in (401, 403, 404), f"{where}: signed-in user refused ({status})"
            continue
        if who == "outsider":
            assert status == 404, f"{where}: outsider must get 404, got {status}"
            continue
        allowed = ROLE_ORDER.index(who) >= ROLE_ORDER.index(rule.min_role)
        if allowed:
            assert status not in (401, 403, 404), f"{where}: {who} should be allowed, got {status}"
        else:
            assert status == 403, f"{where}: {who} is below {rule.min_role} and should get 403, got {status}"


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(n for n, r in all_rules().items() if r.min_role in ROLE_ORDER))
def test_outsider_cannot_reach_objects_through_own_project(name: str, world: Any, client_for: Any, api_for: Any) -> None:
    """The IDOR check: the outsider's own project id with this project's object ids must not find them."""
    rule, objs = _rule_and_objects(name, world)
    kwargs = rule.kwargs(world, objs)
    if set(kwargs) == {"project_id"}:
        pytest.skip("no object id in this URL")
    kwargs["project_id"] = world.other_project.pk
    url = reverse(name, kwargs=kwargs)
    is_api = url.startswith("/api/")
    client = api_for(world.outsider) if is_api else client_for(world.outsider)
    for method in rule.methods:
        status = _call(client, method, url, rule.data, is_api).status_code
        # 403 when the URL needs a stronger role than the outsider has there (the chokepoint answers first).
        expected = (404,) if rule.min_role == "annotator" else (403, 404)
        assert status in expected, f"{method} {url} as outsider via own project: got {status}"


@pytest.mark.django_db
def test_admin_is_staff_only(world: Any, client_for: Any) -> None:
    assert client_for(world.lead).get("/admin/").status_code == 302  # not staff: sent to the admin login
    world.lead.is_staff = True
    world.lead.is_superuser = True
    world.lead.save()
    assert client_for(world.lead).get("/admin/").status_code == 200
