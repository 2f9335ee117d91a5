from __future__ import annotations

from tests.access.rules import Rule, project

RULES: dict[str, Rule] = {
    "datasets:list": Rule("annotator", project),
}
