"""Small query helpers shared by the apps' selectors."""

from __future__ import annotations

from typing import Any

from django.db.models import F, Func, IntegerField, QuerySet, Subquery
from django.db.models.functions import Coalesce


def count_of(queryset: QuerySet[Any]) -> Coalesce:
    """COUNT(*) of `queryset` as an annotation, 0 when nothing matches.

    `queryset` refers to the row being annotated through OuterRef. Several of these on one query stay separate
    subqueries, so counts over different relations do not multiply each other the way joined Count()s would.
    """
    counted = queryset.order_by().annotate(_n=Func(F("pk"), function="COUNT")).values("_n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)
