"""`emc explain AGENCY PERIOD`: why a figure is what it is (issue 5, item 7).

Source: the workers' dossier state, read from the changelog topic of the Faust table `dossiers`
(`{app_id}-dossiers-changelog`; key `agency\\x1fdossier`, value the dossier row of
`streams/worker/state.py`: a JSON list of `[source_partition, offset, event in wire form]`, the events
applied to that dossier). The topic is read from the beginning with a plain consumer (no
group, nothing committed), keeping the last value of each key of the agency; each dossier is
then classified with the pure core (`streams/domain/dossier.py`), exactly as the workers do.

The answer: the counts of the period recomputed from that state, compared with the agency's
hash in Redis, and for each mode (full_online, partial_online, offline, unclassified) and for
rejected, withdrawn and voided dossiers, how many there are and a sample of them with every
applied event: live, or dead because a later event superseded it, and what role each live
event played (channel, resolution, in-person step). Duplicates are recognised when they arrive
and never stored, so they cannot be shown; the event index only remembers that they were seen.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from streams.domain.dossier import (
    COUNT_FIELDS,
    MODES,
    PROCEDURE_RECEIVED_PREFIX,
    Classification,
    classify,
    dossier_counts,
    is_in_person_step,
    live_events,
    local_day_number,
    periods_at,
)
from streams.domain.events import DossierEvent
from streams.domain.instants import us_to_rfc3339
from streams.domain.periods import parse_period
from streams.domain.reorg import AS_WAS
from streams.errors import ExternalServiceError
from streams.kafka.security import kafka_python_security
from streams.kafka.topics import DOSSIERS_TABLE, changelog_topic
from streams.settings import Settings
from streams.worker.codec import event_view_from_wire
from streams.worker.state import decode_dossier_row, dossier_row_parts, row_key

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()  # local_day_number counts days from it

CATEGORIES = ("full_online", "partial_online", "offline", "unclassified", "rejected", "withdrawn", "voided")


@dataclass(frozen=True, slots=True)
class ExplainedEvent:
    event: DossierEvent
    source_partition: int
    offset: int
    live: bool
    superseded_by: tuple[str, ...]  # event_ids of applied events whose `supersedes` names this one
    roles: tuple[str, ...]  # channel | resolution | in_person_step | received | voided | withdrawn


@dataclass(frozen=True, slots=True)
class ExplainedDossier:
    dossier_id: str
    mode: str
    channel: str
    outcome: str | None
    voided: bool
    in_person_step: bool
    events: tuple[ExplainedEvent, ...]
    procedure: str | None = None  # of the received (else submitted) event the receipt is taken from
    received_at_us: int | None = None
    resolved_at_us: int | None = None


@dataclass(frozen=True, slots=True)
class Explanation:
    agency: str
    period: str
    counts: dict[str, int]  # recomputed from the dossier state
    redis_counts: dict[str, int] | None  # the agency hash, when read
    totals: dict[str, int]  # category -> number of dossiers
    samples: dict[str, tuple[ExplainedDossier, ...]]
    dossiers_read: int

    @property
    def matches(self) -> bool | None:
        if self.redis_counts is None:
            return None
        # The hash also holds the procedure figures of indicators 1 and 2, which need the
        # catalogue: explain recomputes and compares the dossier counts of contract section 3.
        return ({k: v for k, v in self.counts.items() if v and k in COUNT_FIELDS}
                == {k: v for k, v in self.redis_counts.items() if v and k in COUNT_FIELDS})


def _roles(event: DossierEvent, c: Classification) -> tuple[str, ...]:
    roles = []
    if c.channel_event is not None and event.event_id == c.channel_event.event_id:
        roles.append("channel")
    if c.received_event is not None and event.event_id == c.received_event.event_id:
        roles.append("received")
    if c.resolution_event is not None and event.event_id == c.resolution_event.event_id:
        roles.append("resolution")
    if is_in_person_step(event, c.resolution_event):
        roles.append("in_person_step")
    if event.type in ("voided", "withdrawn"):
        roles.append(event.type)
    return tuple(roles)


def explain_dossier(dossier_id: str, row: bytes) -> tuple[ExplainedDossier, list[DossierEvent]]:
    """A dossier row as the worker stores it (streams/worker/state.py) explained; also its live events."""
    applied = decode_dossier_row(row)
    events = [a.event for a in applied]
    live = live_events(events)
    live_ids = {e.event_id for e in live}
    c = classify(live)
    explained = tuple(
        ExplainedEvent(
            event=a.event, source_partition=a.source_partition, offset=a.offset, live=a.event.event_id in live_ids,
            superseded_by=tuple(sorted(o.event_id for o in events if o.supersedes == a.event.event_id)),
            roles=_roles(a.event, c) if a.event.event_id in live_ids else (),
        )
        for a in sorted(applied, key=lambda a: (a.event.occurred_at_us, a.event.event_id))
    )
    procedure = c.received_event.procedure_code if c.received_event is not None else None
    return ExplainedDossier(dossier_id, c.mode, c.channel, c.outcome, c.voided, c.in_person_step, explained,
                            procedure, c.received_at_us, c.resolved_at_us), live


def dossier_record(dossier_id: str, row: bytes, period: str, *, always: bool = False) -> dict | None:
    """A dossier of the period as the dossier endpoint answers it (streams/worker/dossier_api.py):
    what EMC holds and decided, its counts in the period and every applied event as `emc explain`
    shows it; None when the dossier counts nothing in the period and was not voided in it
    (unless `always`: a dossier asked for by id)."""
    dossier, live = explain_dossier(dossier_id, row)
    counts = {name: n for (p, name), n in dossier_counts(live).items() if p == period and n}
    if not always and not counts and not (dossier.voided and any(period in periods_at(e.event.occurred_at_us) for e in dossier.events if e.live)):
        return None
    return {
        "dossier_id": dossier_id,
        "procedure": dossier.procedure,
        "received_at": us_to_rfc3339(dossier.received_at_us) if dossier.received_at_us is not None else None,
        "channel": dossier.channel,
        "resolved_at": us_to_rfc3339(dossier.resolved_at_us) if dossier.resolved_at_us is not None else None,
        "outcome": dossier.outcome,
        "mode": dossier.mode,
        "in_person_step": dossier.in_person_step,
        "voided": dossier.voided,
        "counts": counts,
        "events": [_event_json(e) for e in dossier.events],
    }


@lru_cache(maxsize=256)
def _period_day_numbers(period: str) -> tuple[int, int]:
    """The first and last local day of a period as `local_day_number`s: an instant is in the
    period exactly when its day number is between them (the test `periods_at` makes, cheaper)."""
    p = parse_period(period)
    return p.first_day.toordinal() - _EPOCH_ORDINAL, p.last_day.toordinal() - _EPOCH_ORDINAL


# The fields of a stored contribution (streams/domain/dossier.py `_book_dossier`) that name
# what the classification decided: the channel (dated by the receipt), the mode and outcome
# (dated by the resolution); `r:CODE` names the procedure.
_CHANNEL_OF_FIELD = {f"received_{channel}": channel for channel in ("online", "in_person", "postal", "unknown")}
_MODE_FIELDS = frozenset(MODES)
_OUTCOME_FIELDS = frozenset(("completed", "rejected"))


def _summary_from_contribution(applied: list[list], contribution: list[list]) -> tuple | None:
    """(procedure, received_at_us, channel, resolved_at_us, outcome, mode) of a resolved dossier
    without a correction or a void, read from what its row stores: the classification's
    channel, procedure, mode and outcome from the row's contribution (the apply path
    classified it when the row was written), its two instants from the events: all of them
    are live, so the receipt is the earliest received (else submitted) and the resolution the
    earliest result_returned (else rejected), as `classify` decides. None for any other dossier:
    it is classified."""
    times: dict[str, int] = {}
    for _, _, wire in applied:  # wire[2]: type, wire[3]: occurred_at_us, wire[14]: supersedes (codec._FIELDS)
        kind = wire[2]
        if len(wire) < 15 or wire[14] is not None or kind == "voided":  # (a wire stored before `supersedes` existed)
            return None
        if kind not in times or wire[3] < times[kind]:
            times[kind] = wire[3]
    resolved_at_us = times.get("result_returned", times.get("rejected"))
    if resolved_at_us is None:
        return None  # unresolved: the contribution does not name its mode
    procedure = mode = outcome = None
    channel = "unknown"
    for _, name, _ in contribution:
        if name in _MODE_FIELDS:
            mode = name
        elif name in _OUTCOME_FIELDS:
            outcome = name
        elif name in _CHANNEL_OF_FIELD:
            channel = _CHANNEL_OF_FIELD[name]
        elif name.startswith(PROCEDURE_RECEIVED_PREFIX):
            procedure = name[len(PROCEDURE_RECEIVED_PREFIX):]
    if mode is None or outcome is None:
        return None
    return procedure, times.get("received", times.get("submitted")), channel, resolved_at_us, outcome, mode


def dossier_summary(dossier_id: str, row: bytes, period: str) -> dict | None:
    """What `emc reconcile` compares of a dossier, without its events (the dossier endpoint's
    `view=summary`, several times cheaper than `dossier_record`): None when none of its
    applied events occurred in the period (then it counts nothing there). `resolved`: the
    dossier counts as resolved in the period (the rule of `dossier_counts`); times in µs.
    A resolved dossier without corrections or void is read from its row's stored
    contribution (`_summary_from_contribution`); any other is classified, its events as
    named-tuple views of their stored form (`event_view_from_wire`)."""
    first_day, last_day = _period_day_numbers(period)
    applied, contribution = dossier_row_parts(row)
    # wire[3]: occurred_at_us (codec._FIELDS)
    if not any(first_day <= local_day_number(wire[3]) <= last_day for _, _, wire in applied):
        return None
    stored = None if contribution is None else _summary_from_contribution(applied, contribution)
    if stored is not None:
        procedure, received_at_us, channel, resolved_at_us, outcome, mode = stored
        voided = False
    else:
        c = classify(live_events([event_view_from_wire(wire) for _, _, wire in applied]))
        procedure = c.received_event.procedure_code if c.received_event is not None else None
        received_at_us, channel, resolved_at_us, outcome, mode, voided = (c.received_at_us, c.channel, c.resolved_at_us,
                                                                          c.outcome, c.mode, c.voided)
    return {
        "dossier_id": dossier_id,
        "procedure": procedure,
        "received_at_us": received_at_us,
        "channel": channel,
        "resolved_at_us": resolved_at_us,
        "outcome": outcome,
        "mode": mode,
        "voided": voided,
        "resolved": (not voided and outcome is not None and resolved_at_us is not None
                     and first_day <= local_day_number(resolved_at_us) <= last_day),
    }


def rule_text(record: Mapping) -> str:
    """The rule of contract section 2 that decided a dossier's mode, naming the deciding events
    (a dossier as `dossier_record` gives it, or as the dossier endpoint sent it)."""
    by_role: dict[str, list[str]] = {}
    for e in record["events"]:
        for role in e["roles"]:
            by_role.setdefault(role, []).append(e["event_id"])
    channel_from = ", ".join(by_role.get("channel", [])) or "-"
    if record["voided"]:
        return "voided: a live voided event removes the dossier from every count"
    if record["mode"] == "unclassified":
        return "unclassified: no live received or submitted event names a channel"
    if record["mode"] == "offline":
        return f"offline: channel {record['channel']} (from {channel_from})"
    if record["mode"] == "partial_online":
        return f"partial_online: channel online (from {channel_from}), in-person step: {', '.join(by_role.get('in_person_step', []))}"
    return f"full_online: channel online (from {channel_from}), no in-person step"


def explain(
    agency: str,
    period: str,
    rows: Mapping[str, bytes],
    sample: int = 3,
    redis_counts: dict[str, int] | None = None,
) -> Explanation:
    """Pure: the explanation of `agency`'s figures in `period` from its dossier rows (dossier id -> row)."""
    counts = {name: 0 for name in COUNT_FIELDS}
    members: dict[str, list[ExplainedDossier]] = {category: [] for category in CATEGORIES}
    for dossier_id in sorted(rows):
        dossier, live = explain_dossier(dossier_id, rows[dossier_id])
        booked = dossier_counts(live)
        for (p, name), value in booked.items():
            if p == period:
                counts[name] += value
        if (period, "resolved") in booked:
            members[dossier.mode].append(dossier)
        if (period, "rejected") in booked:
            members["rejected"].append(dossier)
        if (period, "withdrawn") in booked:
            members["withdrawn"].append(dossier)
        if dossier.voided and any(period in periods_at(e.event.occurred_at_us) for e in dossier.events if e.live):
            members["voided"].append(dossier)
    return Explanation(
        agency=agency,
        period=period,
        counts=counts,
        redis_counts=redis_counts,
        totals={category: len(found) for category, found in members.items()},
        samples={category: tuple(found[:sample]) for category, found in members.items()},
        dossiers_read=len(rows),
    )


# -- reading the changelog -------------------------------------------------------------------


def rows_from_records(records: Iterable[tuple[bytes | None, bytes | None]], agency: str) -> dict[str, bytes]:
    """The last value of each key of `agency` (a tombstone removes the row), by dossier id."""
    prefix = row_key(agency, "").encode("utf-8")
    rows: dict[str, bytes] = {}
    for key, value in records:
        if key is None or not key.startswith(prefix):
            continue
        dossier_id = key[len(prefix):].decode("utf-8")
        if value is None:
            rows.pop(dossier_id, None)
        else:
            rows[dossier_id] = value
    return rows


def read_dossier_rows(settings: Settings, agency: str, timeout_s: float = 60.0) -> dict[str, bytes]:
    """Read the dossiers changelog to its end (the fetch high watermark, see streams/worker/faust_transport.py on Tansu)."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    topic = changelog_topic(settings.app_id, DOSSIERS_TABLE)
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers, group_id=None, enable_auto_commit=False,
            client_id=f"{settings.app_id}-explain", key_deserializer=None, value_deserializer=None,
            request_timeout_ms=30_000, **kafka_python_security(settings),
        )
    except KafkaError as exc:
        raise ExternalServiceError(f"broker {settings.broker} unreachable: {exc}") from exc
    try:
        deadline = time.monotonic() + timeout_s
        partitions = None
        while partitions is None:
            partitions = consumer.partitions_for_topic(topic)
            if partitions is None:
                if time.monotonic() > deadline:
                    raise ExternalServiceError(f"topic {topic} not found on {settings.broker}: is --app-id right?")
                time.sleep(0.5)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)

        def records() -> Iterator[tuple[bytes | None, bytes | None]]:
            # Streamed: each polled record is filtered by key as it arrives, so memory holds
            # one agency's rows and one poll, never the whole topic.
            while True:
                batch = consumer.poll(timeout_ms=300, max_records=5000)
                for messages in batch.values():
                    for m in messages:
                        yield m.key, m.value
                pending = [tp for tp in tps if consumer.highwater(tp) is None or consumer.position(tp) < consumer.highwater(tp)]
                if not pending and not batch:
                    return
                if time.monotonic() > deadline:
                    raise ExternalServiceError(f"could not read {topic} to its end within {timeout_s:.0f} s")

        return rows_from_records(records(), agency)
    finally:
        consumer.close()


# -- rendering -------------------------------------------------------------------------------


def _event_json(e: ExplainedEvent) -> dict:
    ev = e.event
    fields = {name: getattr(ev, name) for name in ("channel", "method", "amount_vnd", "delivery", "electronic",
                                                    "in_person", "digitized", "supersedes") if getattr(ev, name) not in (None, False)}
    if ev.due_at_us is not None:
        fields["due_at"] = us_to_rfc3339(ev.due_at_us)
    return {
        "event_id": ev.event_id, "type": ev.type, "occurred_at": us_to_rfc3339(ev.occurred_at_us),
        "state": "live" if e.live else "superseded", "superseded_by": list(e.superseded_by), "roles": list(e.roles),
        "fields": fields, "source": {"partition": e.source_partition, "offset": e.offset},
    }


def explanation_json(x: Explanation) -> dict:
    return {
        "agency": x.agency,
        "period": x.period,
        "view": AS_WAS,
        "counts": x.counts,
        "full_online_rate": round(x.counts["full_online"] / x.counts["resolved"], 6) if x.counts["resolved"] else None,
        "redis_counts": x.redis_counts,
        "matches_redis": x.matches,
        "dossiers_read": x.dossiers_read,
        "categories": {
            category: {
                "dossiers": x.totals[category],
                "sample": [
                    {"dossier_id": d.dossier_id, "mode": d.mode, "channel": d.channel, "outcome": d.outcome,
                     "voided": d.voided, "in_person_step": d.in_person_step, "events": [_event_json(e) for e in d.events]}
                    for d in x.samples[category]
                ],
            }
            for category in CATEGORIES
        },
    }


def render_explanation_text(x: Explanation, name: str) -> str:
    c = x.counts
    rate = f"{100 * c['full_online'] / c['resolved']:.2f} %" if c["resolved"] else "undefined (nothing resolved)"
    out = [
        f"{name} ({x.agency}), period {x.period} (as-was: the agency code the events name)",
        f"full-online rate: {rate} = full_online {c['full_online']} / resolved {c['resolved']}",
        "resolved by mode: " + ", ".join(f"{m} {c[m]}" for m in ("full_online", "partial_online", "offline", "unclassified")),
        f"outcomes: completed {c['completed']}, rejected {c['rejected']}; withdrawn {c['withdrawn']}; received {c['received']}",
        f"dossiers in state for this agency: {x.dossiers_read}",
    ]
    if x.redis_counts is None:
        out.append("Redis: not read")
    elif x.matches:
        out.append("Redis: the published counts match the dossier state")
    else:
        diff = {k: (c.get(k, 0), x.redis_counts.get(k, 0)) for k in COUNT_FIELDS if c.get(k, 0) != x.redis_counts.get(k, 0)}
        out.append("Redis: DIFFERS from the dossier state (state, redis): "
                   + ", ".join(f"{k} {a} vs {b}" for k, (a, b) in diff.items())
                   + " (a worker may not have published or flushed yet)")
    for category in CATEGORIES:
        sample = x.samples[category]
        out += ["", f"{category}: {x.totals[category]} dossier(s)" + (f", showing {len(sample)}" if sample else "")]
        for d in sample:
            out.append(f"  dossier {d.dossier_id}: channel {d.channel}, outcome {d.outcome or '-'}, mode {d.mode}"
                       + (", in-person step" if d.in_person_step else "") + (", VOIDED" if d.voided else ""))
            out += [event_line(_event_json(e)) for e in d.events]
    return "\n".join(out) + "\n"


def event_line(ev: Mapping) -> str:
    """One applied event as `emc explain` prints it (`ev` in the form of `_event_json`)."""
    state = "live" if ev["state"] == "live" else f"dead (superseded by {', '.join(ev['superseded_by'])})"
    detail = " ".join(f"{k}={v}" for k, v in ev["fields"].items())
    roles = f" <- {', '.join(ev['roles'])}" if ev["roles"] else ""
    return f"    {ev['occurred_at']}  {ev['type']:<20} {ev['event_id']}  {state}  {detail}{roles}".rstrip()
