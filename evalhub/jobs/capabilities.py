"""What this machine can train with: CUDA devices, bitsandbytes, versions. No Django, no database.

`worker_capabilities()` reads the calling process. A Celery worker asks `worker_capabilities_isolated()` instead,
which does the same in a child interpreter: enumerating CUDA devices initialises CUDA, and a prefork worker's main
process that has initialised CUDA hands broken CUDA to every pool child it forks later (a child replaced after a
crash could then no longer train on the GPU).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 120.0  # importing torch on a cold disk can take a while
_PROBE = (
    "import json, sys\n"
    "from evalhub.jobs.capabilities import cuda_devices\n"
    "json.dump(cuda_devices(), sys.stdout)\n"
)


def cuda_devices() -> list[dict[str, Any]]:
    """[{name, memory_bytes, bf16}] per visible CUDA device; [] without torch or CUDA."""
    try:
        import torch
    except ImportError:
        return []
    try:
        if not torch.cuda.is_available():
            return []
        devices = []
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            # bf16 arithmetic needs compute capability 8.0 (Ampere) or newer.
            devices.append({"name": str(props.name), "memory_bytes": int(props.total_memory), "bf16": props.major >= 8})
        return devices
    except Exception:  # a broken driver is "no CUDA" to us, not a crash
        logger.warning("could not enumerate CUDA devices", exc_info=True)
        return []


def bitsandbytes_installed() -> bool:
    # find_spec, not import: importing bitsandbytes initialises CUDA and prints banners.
    try:
        return importlib.util.find_spec("bitsandbytes") is not None
    except (ImportError, ValueError):
        return False


def _torch_version() -> str:
    try:
        return version("torch")
    except PackageNotFoundError:
        return ""


def _capabilities(devices: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "cuda": bool(devices),
        "cuda_devices": devices,
        "bitsandbytes": bitsandbytes_installed(),
        "torch_version": _torch_version(),
        "python_version": platform.python_version(),
    }


def worker_capabilities() -> dict[str, Any]:
    """This process's capabilities, in WorkerNode's field names."""
    return _capabilities(cuda_devices())


def worker_capabilities_isolated(timeout_s: float = PROBE_TIMEOUT_S) -> dict[str, Any]:
    """The same as `worker_capabilities()`, with CUDA touched only in a child interpreter (see the module doc).

    A probe that fails reports no CUDA rather than failing the worker's start.
    """
    try:
        out = subprocess.run(
            [sys.executable, "-c", _PROBE],
            cwd=Path(__file__).resolve().parents[2],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=True,
        )
        devices = json.loads(out.stdout)
        if not isinstance(devices, list):
            raise TypeError(f"unexpected probe output {out.stdout[:200]!r}")
    except (OSError, subprocess.SubprocessError, ValueError, TypeError) as exc:
        stderr = getattr(exc, "stderr", "") or ""
        logger.warning("CUDA probe failed; reporting this worker without CUDA: %s %s", exc, stderr[-2000:])
        devices = []
    return _capabilities(devices)
