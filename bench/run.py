"""Benchmark runner: `python -m bench.run [NAME ...]`.

Each benchmark is a module `bench/<name>.py` exposing `run() -> dict`. The dict must carry at least `ratio`, `ours`,
`baseline`, `unit` and a parity check, plus a one-line `summary`. The runner writes it to `bench/results/<name>.json`.
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
REQUIRED_KEYS = ("ratio", "ours", "baseline", "unit")


def available() -> list[str]:
    return sorted(
        p.stem for p in BENCH_DIR.glob("*.py") if p.stem not in {"__init__", "run", "common"} and not p.stem.startswith("_")
    )


def run_one(name: str) -> dict:
    module = importlib.import_module(f"bench.{name}")
    started = time.time()
    result = module.run()
    missing = [k for k in REQUIRED_KEYS if k not in result]
    if missing:
        raise SystemExit(f"bench {name}: result lacks {missing}")
    result.setdefault("name", name)
    result["wall_s"] = round(time.time() - started, 2)
    result["machine"] = {"python": platform.python_version(), "cpu_count": __import__("os").cpu_count()}
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"[{name}] {result.get('summary', '')} ratio={result['ratio']:.3f}", flush=True)
    return result


def main(argv: list[str]) -> int:
    names = [a for a in argv if a] or available()
    unknown = [n for n in names if n not in available()]
    if unknown:
        print(f"unknown benchmark(s): {unknown}; available: {available()}", file=sys.stderr)
        return 2
    for name in names:
        run_one(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
