"""The audit log's hash chain, checked: every event's hash recomputed in order, the first broken
link named. Called by `asifdb audit verify` (cli/audit.py); migration 0009 builds the chain."""

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Literal

from sqlalchemy import Connection, Row, text
from sqlalchemy.orm import Session

from asifdb.errors import InvalidInput

# The first event's prev_hash (and the head of an empty log).
GENESIS_HASH = "0" * 64
# The server's canonical text of an event `e`: what its hash covers (defined once, by migration
# 0009; the insert trigger hashes the same text).
CANONICAL = "public.audit_event_canonical(e)"
# Rows fetched per round trip: the log is streamed, never held.
BATCH = 1000

_EVENTS = text(
    f"SELECT e.chain_seq, e.id, e.prev_hash, e.hash, {CANONICAL} AS canonical, e.at, e.actor, "
    "e.action, e.target_type, e.target_id, e.reason, e.details, e.model_version "
    "FROM audit_events e ORDER BY e.chain_seq"
)
_HEAD = text("SELECT seq, hash FROM audit_chain_head WHERE id = 1")
_LINK = re.compile(r"(\d+):([0-9a-f]{64})")

Problem = Literal[
    "missing_event",  # a gap in chain_seq: an event was removed
    "prev_hash_mismatch",  # not linked to the event before it: that one was changed or replaced
    "hash_mismatch",  # its contents are not what was hashed: the event was changed
    "canonical_mismatch",  # the server's canonical text does not say what the columns say
    "head_mismatch",  # the head and the last event disagree: the end was cut, or added to
    "expected_link_missing",  # a head recorded earlier is no longer in the chain: rewritten
]


@dataclass(frozen=True)
class Link:
    """A position in the chain: an event's chain_seq and hash (seq 0: the empty chain)."""

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"

    @classmethod
    def parse(cls, value: str) -> "Link":
        """A link written as SEQ:HASH (what `asifdb audit verify` prints as the head)."""
        found = _LINK.fullmatch(value.strip().lower())
        if found is None:
            raise InvalidInput(
                f"{value!r} is not a chain link: write SEQ:HASH, e.g. the head "
                "`asifdb audit verify` printed (a number, a colon, 64 hex digits)"
            )
        return cls(int(found[1]), found[2])


@dataclass(frozen=True)
class Break:
    """The first broken link: its chain position, its event's id (None: no such event)."""

    seq: int
    event_id: int | None
    problem: Problem
    detail: str

    def __str__(self) -> str:
        event = "missing" if self.event_id is None else f"id {self.event_id}"
        return f"event {self.seq} ({event}): {self.problem}: {self.detail}"


@dataclass(frozen=True)
class ChainReport:
    """What `verify` found: the events checked before any break, and the head it read."""

    events_checked: int
    head: Link | None
    broken: Break | None

    @property
    def ok(self) -> bool:
        return self.broken is None


def verify(db: Connection | Session, *, expect: Link | None = None) -> ChainReport:
    """Check the whole chain, in order, in one snapshot; stop at the first broken link.

    Each hash is recomputed here (SHA-256 of the server's canonical text of the stored
    columns); the stored `hash` is only compared. `expect`, a link recorded earlier, must still
    be in the chain: that detects a rewrite of the whole chain and its head. Call it first in
    its transaction: it switches that to REPEATABLE READ.
    """
    if isinstance(db, Session):
        conn = db.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    else:
        conn = db.execution_options(isolation_level="REPEATABLE READ")
    row = conn.execute(_HEAD).one_or_none()
    head = None if row is None else Link(row.seq, row.hash)
    if head is None:
        missing = Break(0, None, "head_mismatch", "the audit_chain_head row is missing")
        return ChainReport(0, None, missing)
    genesis = Link(0, GENESIS_HASH)
    broken = _expected(expect, genesis, None)
    checked, last, last_id = 0, genesis, None
    if broken is None:
        checked, last, last_id, broken = _walk(conn, head=head, expect=expect)
    if broken is None:
        broken = _tail_problem(head, last, last_id)
    if broken is None and expect is not None and expect.seq > last.seq:
        broken = Break(
            expect.seq,
            None,
            "expected_link_missing",
            f"the chain ends at event {last.seq}, before the recorded link {expect}: events "
            "were removed from its end and the head rewritten",
        )
    return ChainReport(checked, head, broken)


def _walk(
    conn: Connection, *, head: Link, expect: Link | None
) -> tuple[int, Link, int | None, Break | None]:
    """Stream the events in chain order: how many were sound, the last sound link and its
    event's id, and the first break (None: none before the end)."""
    checked, last, last_id = 0, Link(0, GENESIS_HASH), None
    broken: Break | None = None
    result = conn.execute(_EVENTS, execution_options={"yield_per": BATCH})
    try:
        for event in result:
            broken = _link_problem(event, after=last) or _past_head(event, head)
            if broken is None and expect is not None and event.chain_seq == expect.seq:
                broken = _expected(expect, Link(event.chain_seq, event.hash), event.id)
            if broken is not None:
                break
            checked, last, last_id = checked + 1, Link(event.chain_seq, event.hash), event.id
    finally:
        result.close()
    return checked, last, last_id, broken


def _link_problem(event: Row[Any], *, after: Link) -> Break | None:
    """What is wrong with `event` as the link after `after` (None: nothing)."""
    seq = after.seq + 1
    if event.chain_seq != seq:
        found = f"the next event in the log is {event.chain_seq} (id {event.id})"
        what = "removed" if event.chain_seq > seq else "out of sequence"
        return Break(seq, None, "missing_event", f"{found}: events were {what}")
    if event.prev_hash != after.hash:
        before = "the genesis hash (64 zeros)" if after.seq == 0 else f"event {after.seq}'s hash"
        return Break(
            seq,
            event.id,
            "prev_hash_mismatch",
            f"its prev_hash {event.prev_hash} is not {before} {after.hash}: the event before it "
            "was changed or replaced, or this one was inserted",
        )
    recomputed = hashlib.sha256(event.canonical.encode("utf-8")).hexdigest()
    if recomputed != event.hash:
        return Break(
            seq,
            event.id,
            "hash_mismatch",
            f"its contents hash to {recomputed}, not to its stored {event.hash}: the event was "
            "changed after it was written",
        )
    if json.loads(event.canonical) != _columns(event):
        return Break(
            seq,
            event.id,
            "canonical_mismatch",
            "the server's canonical text of it does not say what its columns say: "
            "audit_event_canonical was changed to hide an edit",
        )
    return None


def _columns(event: Row[Any]) -> list[Any]:
    """The stored columns in the canonical text's order, as its JSON would read back."""
    at = event.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return [
        event.chain_seq,
        event.id,
        at,
        event.actor,
        event.action,
        event.target_type,
        event.target_id,
        event.reason,
        event.details,
        event.model_version,
        event.prev_hash,
    ]


def _past_head(event: Row[Any], head: Link) -> Break | None:
    if event.chain_seq <= head.seq:
        return None
    return Break(
        event.chain_seq,
        event.id,
        "head_mismatch",
        f"it comes after the head ({head}): it was inserted with the chain's trigger skipped",
    )


def _tail_problem(head: Link, last: Link, last_id: int | None) -> Break | None:
    if head.seq > last.seq:
        return Break(
            last.seq + 1,
            None,
            "head_mismatch",
            f"the head ({head}) says the chain ends at event {head.seq}, but the last event is "
            f"{last.seq}: events were removed from its end",
        )
    if head.hash != last.hash:
        return Break(
            last.seq,
            last_id,
            "head_mismatch",
            f"the head's hash {head.hash} is not the last event's {last.hash}",
        )
    return None


def _expected(expect: Link | None, found: Link, event_id: int | None) -> Break | None:
    """Whether the recorded link `expect` is `found` (checked where their seqs meet)."""
    if expect is None or expect.seq != found.seq or expect.hash == found.hash:
        return None
    return Break(
        expect.seq,
        event_id,
        "expected_link_missing",
        f"its hash is {found.hash}, not the recorded {expect.hash}: the chain was rewritten "
        f"from event {expect.seq} or before",
    )
