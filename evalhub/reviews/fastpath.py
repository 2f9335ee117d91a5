"""PostgreSQL fast paths for the two hot requests of the rating loop: taking the next item, and storing a first
rating. Each is one SQL statement (one round trip, atomic on its own) instead of the ORM's BEGIN / lock / read /
write / COMMIT sequence, which at 50 concurrent annotators is most of the request's cost.

They take the same locks and rely on the same constraints as the ORM paths in `services.py`:
- `take_next`: the first item (in queue order) with a free slot that this annotator never had, locked with
  FOR UPDATE SKIP LOCKED, its slot taken with a conditional UPDATE, the assignment inserted (the unique constraints
  on (item, annotator) and on one active assignment per annotator apply), and the item's text returned with it.
- `first_submit`: only for the common case, an *active* assignment of this annotator submitted for the first time
  without a correction: locks the item and then the assignment (the order every writer of assignments keeps, see
  services._lock_items), inserts the rating and its values, marks the assignment submitted and
  counts the rating on the item. Anything else (a repeat, a revision, a late submit after a skip or expiry, a
  correction, someone else's token) returns None and the ORM path decides, with its full checks and messages.

Tests run on SQLite (ORM paths) and on PostgreSQL (these paths wherever they apply, e.g. the concurrency test).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction

from evalhub.datasets.models import Example
from evalhub.generation.models import Output
from evalhub.reviews.models import Assignment, AssignmentStatus, CampaignItem, Rating, RatingValue


def enabled() -> bool:
    return connection.vendor == "postgresql"


def _rows(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """One statement. Inside an outer transaction it runs in a savepoint, so a constraint violation (raised as
    IntegrityError) leaves the outer transaction usable; otherwise it commits on its own (autocommit)."""
    if connection.in_atomic_block:
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


_T = {
    "item": CampaignItem._meta.db_table,
    "assignment": Assignment._meta.db_table,
    "rating": Rating._meta.db_table,
    "value": RatingValue._meta.db_table,
    "output": Output._meta.db_table,
    "example": Example._meta.db_table,
}

TAKE_NEXT_SQL = """
WITH candidate AS (
    SELECT ci.id FROM {item} ci
    WHERE ci.campaign_id = %(campaign)s AND ci.open_slots > 0
      AND NOT EXISTS (SELECT 1 FROM {assignment} a WHERE a.item_id = ci.id AND a.annotator_id = %(user)s)
    ORDER BY ci.position
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), taken AS (
    UPDATE {item} ci SET open_slots = ci.open_slots - 1
    FROM candidate WHERE ci.id = candidate.id AND ci.open_slots > 0
    RETURNING ci.id, ci.output_id, ci.token, ci.position, ci.open_slots, ci.ratings_count, ci.is_gold
), created AS (
    INSERT INTO {assignment} (campaign_id, item_id, annotator_id, token, status, assigned_at, expires_at)
    SELECT %(campaign)s, taken.id, %(user)s, %(token)s, 'active', %(now)s, %(expires)s FROM taken
    RETURNING id, item_id
)
SELECT created.id, taken.id, taken.token, taken.position, taken.open_slots, taken.ratings_count, taken.is_gold,
       o.id, o.text, o.run_id, e.id, e.prompt, e.messages, e.reference
FROM created
JOIN taken ON taken.id = created.item_id
JOIN {output} o ON o.id = taken.output_id
JOIN {example} e ON e.id = o.example_id
""".format(**_T)


def take_next(*, campaign_id: int, user_id: int, token: str, now: datetime, minutes: int) -> Assignment | None:
    """Hand this annotator a new item, or None when none is left for them. Raises IntegrityError when the
    annotator's other request took an item at the same moment (they may hold one active assignment)."""
    expires = now + timedelta(minutes=minutes)
    rows = _rows(TAKE_NEXT_SQL, {"campaign": campaign_id, "user": user_id, "token": token, "now": now,
                                 "expires": expires})
    if not rows:
        return None
    (aid, item_id, item_token, position, slots, count, gold, oid, text, run_id, eid, prompt, messages,
     reference) = rows[0]
    if isinstance(messages, str):
        messages = json.loads(messages)
    example = Example(pk=eid, prompt=prompt, messages=messages, reference=reference)
    output = Output(pk=oid, text=text, run_id=run_id, example_id=eid)
    output.example = example
    item = CampaignItem(pk=item_id, campaign_id=campaign_id, output_id=oid, token=item_token, position=position,
                        open_slots=slots, ratings_count=count, is_gold=gold)
    item.output = output
    assignment = Assignment(pk=aid, campaign_id=campaign_id, item_id=item_id, annotator_id=user_id, token=token,
                            status=AssignmentStatus.ACTIVE, assigned_at=now, expires_at=expires)
    assignment.item = item
    return assignment


FIRST_SUBMIT_SQL = """
WITH i AS (
    SELECT ci.id FROM {item} ci
    WHERE ci.id = (SELECT item_id FROM {assignment} WHERE campaign_id = %(campaign)s AND token = %(token)s)
    FOR NO KEY UPDATE
), a AS (
    SELECT id, item_id, assigned_at FROM {assignment}
    WHERE campaign_id = %(campaign)s AND token = %(token)s AND annotator_id = %(user)s AND status = 'active'
      AND item_id IN (SELECT id FROM i)
    FOR UPDATE
), r AS (
    INSERT INTO {rating} (assignment_id, campaign_id, item_id, annotator_id, rubric_version_id, submission_token,
                          comment, seconds_on_item, seconds_server, revisions, created_at, updated_at)
    SELECT a.id, %(campaign)s, a.item_id, %(user)s, %(version)s, %(submission)s, %(comment)s, %(seconds)s,
           GREATEST(0, EXTRACT(EPOCH FROM (%(now)s::timestamptz - a.assigned_at))), 0, %(now)s, %(now)s
    FROM a
    RETURNING id, item_id
), done AS (
    UPDATE {assignment} SET status = 'submitted', submitted_at = %(now)s WHERE id IN (SELECT id FROM a)
), counted AS (
    UPDATE {item} SET ratings_count = ratings_count + 1 WHERE id IN (SELECT item_id FROM r)
    RETURNING id, ratings_count, is_gold
), v AS (
    INSERT INTO {value} (rating_id, criterion_id, number, label, labels, text)
    SELECT r.id, x.criterion, x.number, x.label, x.labels, x.text
    FROM r CROSS JOIN unnest(%(criteria)s::bigint[], %(numbers)s::float8[], %(labels)s::text[],
                             %(labelss)s::jsonb[], %(texts)s::text[]) AS x(criterion, number, label, labels, text)
)
SELECT r.id, counted.id, counted.ratings_count, counted.is_gold FROM r JOIN counted ON counted.id = r.item_id
""".format(**_T)


def first_submit(
    *,
    campaign_id: int,
    user_id: int,
    rubric_version_id: int,
    token: str,
    submission: str,
    comment: str,
    seconds: float,
    values: dict[int, Any],
    now: datetime,
) -> tuple[int, int, int, bool] | None:
    """Store the first rating of an active assignment. Returns (rating id, item id, the item's rating count,
    is gold), or None when this is not that case (the caller then takes the ORM path)."""
    ids = list(values)
    fields = [values[c].fields() for c in ids]
    rows = _rows(FIRST_SUBMIT_SQL, {
        "campaign": campaign_id, "user": user_id, "version": rubric_version_id, "token": token,
        "submission": submission, "comment": comment, "seconds": seconds, "now": now,
        "criteria": ids,
        "numbers": [f["number"] for f in fields],
        "labels": [f["label"] for f in fields],
        "labelss": [json.dumps(f["labels"]) if f["labels"] is not None else None for f in fields],
        "texts": [f["text"] for f in fields],
    })
    if not rows:
        return None
    rating_id, item_id, count, gold = rows[0]
    return rating_id, item_id, count, gold
