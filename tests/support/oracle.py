"""The independent batch computation: every count from the whole event list at once.

No streaming machinery, no offsets, no state rows: the valid events in input order, the
first of each (agency, event_id), grouped by dossier, classified, summed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

from streams.domain.catalogue import Catalogue
from streams.domain.dossier import Counts, counts_of_applied, is_procedure_field, row_counts_of_applied
from streams.domain.events import DossierEvent

# (agency, period) -> {field: value}, zero fields omitted
Expected = dict[tuple[str, str], dict[str, int]]


def batch_counts(events_in_input_order: Iterable[DossierEvent], catalogue: Catalogue = Catalogue()) -> Expected:
    """Every count of an agency hash, as Redis holds it: the counts of the contract (section 3)
    and the procedure figures of indicators 1 and 2 under `catalogue` (empty: every procedure
    with a dossier is "not in catalogue")."""
    expected: Expected = {}
    for (agency, period), row in batch_row_counts(events_in_input_order).items():
        counts = {f: v for f, v in row.items() if not is_procedure_field(f)}
        counts.update(catalogue.figures(agency, period, {f: v for f, v in row.items() if is_procedure_field(f)}))
        if any(counts.values()):
            expected[(agency, period)] = nonzero(counts)
    return expected


def batch_contract_counts(events_in_input_order: Iterable[DossierEvent]) -> Expected:
    """The counts of the contract (section 3) alone."""
    return _batch(events_in_input_order, counts_of_applied)


def batch_row_counts(events_in_input_order: Iterable[DossierEvent]) -> Expected:
    """The counts and the per-procedure counts, as the counter and procedure rows hold them."""
    return _batch(events_in_input_order, row_counts_of_applied)


def _batch(events_in_input_order: Iterable[DossierEvent], count: Callable[[list[DossierEvent]], Counts]) -> Expected:
    first: dict[tuple[str, str], DossierEvent] = {}
    for event in events_in_input_order:
        if event.type == "heartbeat":
            continue
        first.setdefault((event.agency_code, event.event_id), event)
    dossiers: dict[tuple[str, str], list[DossierEvent]] = defaultdict(list)
    for (agency, _), event in first.items():
        dossiers[(agency, event.dossier_id)].append(event)
    totals: Expected = defaultdict(dict)
    for (agency, _), events in dossiers.items():
        for (period, field), value in count(events).items():
            row = totals[(agency, period)]
            row[field] = row.get(field, 0) + value
    return {key: {f: v for f, v in row.items() if v} for key, row in totals.items() if any(row.values())}


def nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {f: int(v) for f, v in counts.items() if int(v)}


def accepted_events(messages: Iterable, known_agencies: Iterable[str]) -> list[DossierEvent]:
    """The messages (objects with `key` and `value`, or (key, value) pairs) that a worker
    accepts: valid events of agencies in the registry, in input order."""
    from streams.domain.events import parse_event
    from streams.errors import InvalidEvent

    known = set(known_agencies)
    valid = []
    for message in messages:
        key, value = (message.key, message.value) if hasattr(message, "key") else message[:2]
        try:
            event = parse_event(value or b"", key)
        except InvalidEvent:
            continue
        if event.agency_code in known:
            valid.append(event)
    return valid


def batch_counts_of_messages(messages: Iterable, known_agencies: Iterable[str]) -> Expected:
    """`batch_counts` of the messages a worker accepts (`accepted_events`)."""
    return batch_counts(accepted_events(messages, known_agencies))
