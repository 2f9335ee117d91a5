"""Small formatting filters for the tuning pages (numbers a lead compares at a glance)."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.filter
def percent(value: Any, digits: int = 2) -> str:
    """0.0034 -> "0.34 %"."""
    if value is None or value == "":
        return "–"
    return f"{100 * float(value):.{int(digits)}f} %"


@register.filter
def duration(seconds: Any) -> str:
    if seconds is None or seconds == "":
        return "–"
    s = float(seconds)
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60)} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"


@register.filter
def loss(value: Any) -> str:
    if value is None or value == "":
        return "–"
    return f"{float(value):.4f}"


@register.filter
def compact(value: Any) -> str:
    """134515008 -> "134.5 M"."""
    if value is None or value == "":
        return "–"
    n = float(value)
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f}"


@register.filter
def get(mapping: Any, key: Any) -> Any:
    return mapping.get(key) if hasattr(mapping, "get") else None


@register.filter
def param(value: Any) -> str:
    """A searched parameter's value: floats to 4 significant digits (8.1148e-05, not 0.00008114781797321047)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


@register.filter
def method_label(value: Any) -> str:
    from evalhub.tuning.services import METHOD_LABELS

    return METHOD_LABELS.get(str(value), str(value))
