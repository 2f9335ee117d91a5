"""Browser tests: Playwright driving Debian's Chromium against pytest-django's live server.

Reusable fixtures for every app's browser tests:
- `browser` (session): one Chromium for the whole run;
- `page`: a fresh browser context (cookies, storage) and page per test, laptop-sized;
- `login(page, user)`: signs `user` in through the login form (test users share `tests.conftest.PASSWORD`);
- `site`: the live server's base URL, without a trailing slash; `site_url("/p/1/data/")` joins a path.

Mark browser tests `@pytest.mark.e2e` and `@pytest.mark.django_db(transaction=True)` (the live server runs in
another thread and must see committed data). Celery runs tasks eagerly in tests, so a job started by a request
finishes during that request. Set EVALHUB_CHROMIUM to use another Chromium binary.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Playwright's sync API runs an event loop in the test thread; the ORM calls in fixtures are still synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1440, "height": 900}
TIMEOUT_MS = 20_000


def chromium_path() -> str | None:
    explicit = os.environ.get("EVALHUB_CHROMIUM")
    if explicit:
        return explicit
    for candidate in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if Path(candidate).exists():
            return candidate
    return shutil.which("chromium")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        pytest.skip("Chromium is not installed (make chromium installs Debian's package)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT, locale="en-GB")
    context.set_default_timeout(TIMEOUT_MS)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.js_errors = errors  # tests may assert the page raised no JavaScript error
    try:
        yield pg
    finally:
        context.close()


@pytest.fixture
def site(live_server: Any) -> str:
    return str(live_server.url).rstrip("/")


@pytest.fixture
def site_url(site: str) -> Callable[[str], str]:
    def join(path: str) -> str:
        return site + (path if path.startswith("/") else "/" + path)

    return join


@pytest.fixture
def login(site: str) -> Callable[..., None]:
    """login(page, user, password=PASSWORD): sign in through the form and wait until the project list shows."""
    from tests.conftest import PASSWORD

    def sign_in(pg: Any, user: Any, password: str = PASSWORD) -> None:
        pg.goto(f"{site}/login/")
        pg.fill("#id_username", user.username)
        pg.fill("#id_password", password)
        with pg.expect_navigation():
            pg.click("button[type=submit]")
        assert "/login/" not in pg.url, f"login as {user.username} failed"

    return sign_in
