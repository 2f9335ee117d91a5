"""trainer/ is a plain library for GPU/CPU workers: nothing under it may import Django."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

TRAINER = Path(__file__).resolve().parents[2] / "trainer"


def test_no_module_under_trainer_imports_django_statically() -> None:
    offenders = []
    for path in sorted(TRAINER.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(TRAINER.parent)}: {n}"
                for n in names
                if n.split(".")[0] in {"django", "rest_framework", "evalhub"}
            ]
    assert not offenders, offenders


@pytest.mark.slow
def test_importing_every_trainer_module_loads_no_django() -> None:
    modules = sorted(
        ".".join(p.relative_to(TRAINER.parent).with_suffix("").parts).removesuffix(".__init__")
        for p in TRAINER.rglob("*.py")
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'rest_framework', 'evalhub'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=TRAINER.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
