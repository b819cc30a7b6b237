"""Control records (targets, maintenance windows): validation, keys, the latest-record state,
and the CLI's refusal of bad input (before anything reaches a broker)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import orjson
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from streams.cli.main import main
from streams.domain.compacted import apply_latest
from streams.domain.control import (
    CONTROL_SCHEMA,
    ControlState,
    Maintenance,
    Target,
    agency_control_fields,
    clearing_messages,
    current_agency_targets,
    declaration_messages,
    encode_record,
    maintenance_key,
    maintenance_window_key,
    make_maintenance,
    make_target,
    parse_control_message,
    periods_touched,
    withdrawal_messages,
)
from streams.domain.registry import Registry
from streams.errors import InvalidControlRecord
from tests.support.events import rfc3339
from tests.support.paths import REPO_ROOT

REGISTRY = Registry.load()
CODES = [a.code for a in REGISTRY]
CURRENT = [a.code for a in REGISTRY if a.valid_to is None and a.valid_from <= date(2020, 1, 1)]
ENDED = [a for a in REGISTRY if a.valid_to is not None or a.valid_from > date(2020, 1, 1)]
SET_AT = "2025-05-01T00:00:00Z"
SCHEMA_PATH = REPO_ROOT / "schemas" / "agency-control.v1.json"

codes = st.sampled_from(CURRENT)
years = st.integers(2020, 2030)
target_periods = st.one_of(
    years.map(str),
    st.tuples(years, st.integers(1, 4)).map(lambda t: f"{t[0]}-Q{t[1]}"),
    st.tuples(years, st.integers(1, 12)).map(lambda t: f"{t[0]}-{t[1]:02d}"),
)
ratios = st.floats(0, 1, allow_nan=False)
instants = st.datetimes(datetime(2020, 1, 1), datetime(2030, 1, 1), timezones=st.just(UTC))
offsets = st.sampled_from([timedelta(0), timedelta(hours=7), timedelta(hours=-5), timedelta(hours=5, minutes=30)])


def _us(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


@given(codes, target_periods, ratios)
def test_a_valid_target_survives_the_topic_under_its_key(agency: str, period: str, ratio: float) -> None:
    target = make_target(REGISTRY, agency, period, ratio, SET_AT)
    key, value = encode_record(target)
    assert key == f"target:{agency}:{period}".encode()
    doc = orjson.loads(value)
    assert (doc["schema"], doc["kind"], doc["agency"], doc["period"], doc["ratio"]) == (CONTROL_SCHEMA, "target", agency, period, ratio)
    assert parse_control_message(REGISTRY, key, value) == (key.decode(), target)


@given(codes, target_periods, st.one_of(st.floats(allow_nan=True), st.integers(-5, 5), st.booleans(), st.text(max_size=3)))
def test_a_ratio_outside_0_1_is_refused(agency: str, period: str, ratio: object) -> None:
    valid = (not isinstance(ratio, bool) and isinstance(ratio, (int, float)) and not math.isnan(ratio) and 0 <= ratio <= 1)
    if valid:
        assert make_target(REGISTRY, agency, period, ratio, SET_AT).ratio == ratio
    else:
        with pytest.raises(InvalidControlRecord, match="ratio"):
            make_target(REGISTRY, agency, period, ratio, SET_AT)


@given(st.text(min_size=1, max_size=8))
def test_an_agency_outside_the_registry_is_refused(code: str) -> None:
    assume(code not in REGISTRY)
    with pytest.raises(InvalidControlRecord, match="unknown agency"):
        make_target(REGISTRY, code, "2025-04", 0.5, SET_AT)
    with pytest.raises(InvalidControlRecord, match="unknown agency"):
        make_maintenance(REGISTRY, code, "2025-04-01T00:00:00Z", "2025-04-02T00:00:00Z", "x", SET_AT)


@given(st.sampled_from(ENDED), target_periods)
def test_a_target_needs_the_agency_to_exist_in_the_period(agency, period: str) -> None:
    year = int(period[:4])
    if period.isdigit():
        first, last = date(year, 1, 1), date(year, 12, 31)
    elif "Q" in period:
        quarter = int(period[-1])
        first = date(year, 3 * quarter - 2, 1)
        last = (date(year + 1, 1, 1) if quarter == 4 else date(year, 3 * quarter + 1, 1)) - timedelta(days=1)
    else:
        month = int(period[5:])
        first = date(year, month, 1)
        last = (date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)) - timedelta(days=1)
    exists = agency.valid_from <= last and (agency.valid_to is None or first <= agency.valid_to)
    if exists:
        assert make_target(REGISTRY, agency.code, period, 0.7, SET_AT).period == period
    else:
        with pytest.raises(InvalidControlRecord, match="not valid in"):
            make_target(REGISTRY, agency.code, period, 0.7, SET_AT)


@pytest.mark.parametrize("period", ["2025-04-30", "2025-13", "2025-Q5", "25", "", "2025-4", "april"])
def test_a_period_that_is_not_a_month_quarter_or_year_is_refused(period: str) -> None:
    with pytest.raises(InvalidControlRecord, match="period"):
        make_target(REGISTRY, CURRENT[0], period, 0.5, SET_AT)


@given(codes, instants, instants, offsets, offsets, st.text(min_size=1, max_size=40).filter(str.strip), instants)
def test_a_maintenance_window_needs_until_after_from_and_is_half_open(
    agency: str, start: datetime, until: datetime, off1: timedelta, off2: timedelta, reason: str, now: datetime
) -> None:
    start_text, until_text = rfc3339(start, off1), rfc3339(until, off2)
    start_s, until_s = start.replace(microsecond=0), until.replace(microsecond=0)
    if until_s <= start_s:
        with pytest.raises(InvalidControlRecord, match="until"):
            make_maintenance(REGISTRY, agency, start_text, until_text, reason, SET_AT)
        return
    window = make_maintenance(REGISTRY, agency, start_text, until_text, reason, SET_AT)
    key, value = encode_record(window)
    assert parse_control_message(REGISTRY, key, value) == (maintenance_window_key(agency, window.start_us), window)
    assert window.active_at(_us(now)) == (start_s <= now < until_s)
    assert window.active_at(_us(start_s)) and not window.active_at(_us(until_s))
    state = ControlState.of([window])
    assert (state.maintenance_at(agency, _us(now)) is not None) == (start_s <= now < until_s)
    fields = agency_control_fields(state, agency, _us(now), "2025-05")
    assert fields["maintenance"] == ({"from": start_text, "until": until_text, "reason": reason.strip()} if now < until_s else None)


@pytest.mark.parametrize(
    ("start", "until", "reason", "message"),
    [
        ("2025-05-01T10:00:00+07:00", "2025-05-01T09:00:00+07:00", "x", "must be after"),
        ("2025-05-01T10:00:00+07:00", "2025-05-01T03:00:00Z", "x", "must be after"),  # the same instant
        ("2025-05-01T10:00:00", "2025-05-02T10:00:00+07:00", "x", "with an offset"),
        ("2025-05-01", "2025-05-02T10:00:00+07:00", "x", "with an offset"),
        ("2025-02-30T10:00:00Z", "2025-05-02T10:00:00+07:00", "x", "RFC 3339"),
        ("2025-05-01T10:00:00Z", "2025-05-02T10:00:00Z", "  ", "reason"),
        ("2025-05-01T10:00:00Z", "2025-05-02T10:00:00Z", "x" * 501, "reason"),
    ],
)
def test_bad_maintenance_windows_are_refused(start: str, until: str, reason: str, message: str) -> None:
    with pytest.raises(InvalidControlRecord, match=message):
        make_maintenance(REGISTRY, CURRENT[0], start, until, reason, SET_AT)


def test_messages_whose_key_and_value_disagree_or_are_not_records_are_refused() -> None:
    target = make_target(REGISTRY, CURRENT[0], "2025-04", 0.5, SET_AT)
    _, value = encode_record(target)
    bad = [
        (f"target:{CURRENT[1]}:2025-04".encode(), value, "does not match"),
        (None, value, "needs a key"),
        (b"other:X", value, "expected target"),
        (b"target:X:2025-04", b"{not json", "not JSON"),
        (b"target:X:2025-04", b'{"schema": "other"}', "not an emc.agency-control.v1"),
        (b"target:X:2025-04", orjson.dumps({"schema": CONTROL_SCHEMA, "kind": "target", "agency": CURRENT[0]}), "without"),
        (b"target:X:2025-04", orjson.dumps({"schema": CONTROL_SCHEMA, "kind": "bogus"}), "kind"),
    ]
    for key, raw, message in bad:
        with pytest.raises(InvalidControlRecord, match=message):
            parse_control_message(REGISTRY, key, raw)
    assert parse_control_message(REGISTRY, b"maintenance:T01", None) == ("maintenance:T01", None)


record_ops = st.lists(
    st.tuples(st.sampled_from(CURRENT[:3]), st.sampled_from(["2025-04", "2025-Q2", "2025"]),
              st.one_of(st.none(), ratios), st.booleans()),
    max_size=30,
)


@given(record_ops)
def test_the_state_keeps_the_latest_record_of_each_key_and_tombstones_remove(ops) -> None:
    records: dict = {}
    expected_targets: dict[tuple[str, str], float] = {}
    expected_windows: dict[str, int] = {}
    for i, (agency, period, ratio, is_window) in enumerate(ops):
        if is_window:
            # Every declaration here starts at the same instant: the same window key.
            key = maintenance_window_key(agency, _us(datetime(2025, 5, 1, tzinfo=UTC)))
            record = None if ratio is None else make_maintenance(
                REGISTRY, agency, "2025-05-01T00:00:00Z", f"2025-05-{i % 27 + 2:02d}T00:00:00Z", f"r{i}", SET_AT)
            if record is None:
                expected_windows.pop(agency, None)
            else:
                expected_windows[agency] = record.until_us
        else:
            key = f"target:{agency}:{period}"
            record = None if ratio is None else make_target(REGISTRY, agency, period, ratio, SET_AT)
            if ratio is None:
                expected_targets.pop((agency, period), None)
            else:
                expected_targets[(agency, period)] = ratio
        raw_key, raw_value = (key.encode(), None) if record is None else encode_record(record)
        apply_latest(records, *parse_control_message(REGISTRY, raw_key, raw_value))
    state = ControlState.of(records.values())
    assert {k: t.ratio for k, t in state.targets.items()} == expected_targets
    assert {a: [w.until_us for w in ws] for a, ws in state.maintenance.items()} == {a: [u] for a, u in expected_windows.items()}
    by_period: dict[str, dict[str, float]] = {}
    for (agency, period), ratio in expected_targets.items():
        by_period.setdefault(period, {})[agency] = ratio
    assert state.targets_by_period() == by_period
    current = {"day": "2025-04-30", "month": "2025-04", "quarter": "2025-Q2", "year": "2025"}
    assert current_agency_targets(state, CURRENT[:3], current) == {
        (agency, {"2025-04": "month", "2025-Q2": "quarter", "2025": "year"}[period]): ratio
        for (agency, period), ratio in expected_targets.items()
    }
    with pytest.raises(TypeError):
        state.targets[("X", "2025")] = None  # type: ignore[index]


def test_the_json_schema_accepts_the_records_and_refuses_bad_ones() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    target = make_target(REGISTRY, CURRENT[0], "2025-Q2", 0.85, SET_AT)
    window = make_maintenance(REGISTRY, CURRENT[0], "2025-05-01T08:00:00+07:00", "2025-05-02T08:00:00+07:00", "upgrade", SET_AT)
    for record in (target, window):
        validator.validate(orjson.loads(encode_record(record)[1]))
    for bad in (
        {**target.to_json(), "ratio": 1.5},
        {**target.to_json(), "period": "2025-04-30"},
        {**window.to_json(), "until": "tomorrow"},
        {k: v for k, v in window.to_json().items() if k != "reason"},
    ):
        assert not validator.is_valid(bad), bad


# -- the CLI refuses bad input with one line, exit 2, before reaching any broker -----------

NOWHERE = ["--broker", "kafka://127.0.0.1:9"]  # nothing listens there: a refusal must come first


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["targets", "set", "XX99", "2025-04", "0.8"], "unknown agency 'XX99'"),
        (["targets", "set", CURRENT[0], "2025-04", "1.5"], "ratio must be a number between 0 and 1"),
        (["targets", "set", CURRENT[0], "2025-04", "150%"], "ratio must be a number between 0 and 1"),
        (["targets", "set", CURRENT[0], "2025-04", "lots"], "ratio must be a number between 0 and 1"),
        (["targets", "set", CURRENT[0], "2025-04-30", "0.8"], "per month, quarter or year"),
        (["targets", "clear", "XX99", "2025-04"], "unknown agency"),
        (["agency", "maintenance", "XX99", "--until", "2025-05-01T10:00:00+07:00", "--reason", "x"], "unknown agency"),
        (["agency", "maintenance", CURRENT[0], "--from", "2025-05-01T10:00:00+07:00",
          "--until", "2025-05-01T09:00:00+07:00", "--reason", "x"], "must be after from"),
        (["agency", "maintenance", CURRENT[0], "--until", "2025-05-01T10:00:00+07:00"], "needs --until and --reason"),
        (["agency", "maintenance", CURRENT[0], "--clear", "--reason", "x"], "--clear takes no"),
        (["agency", "maintenance", "XX99", "--clear"], "unknown agency"),
        (["agency", "maintenance", CURRENT[0], "--withdraw", "2 Dec"], "not an RFC 3339 time"),
        (["agency", "maintenance", CURRENT[0], "--withdraw", "2024-12-02T00:00:00+07:00", "--clear"], "not several"),
        (["agency", "maintenance", CURRENT[0], "--withdraw", "2024-12-02T00:00:00+07:00", "--until", "2025-01-01T00:00:00Z"],
         "--withdraw takes no"),
    ],
)
def test_the_cli_refuses_bad_input_with_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    assert main([*argv, *NOWHERE]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("emc: error: ") and message in lines[0], captured.err
    assert captured.out == ""


def test_the_cli_refusal_is_one_line_from_a_real_process() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", "targets", "set", CURRENT[0], "2025-04", "1.5", *NOWHERE],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "emc: error: ratio must be a number between 0 and 1 (0.85 for 85 %), got 1.5"
    ]


def test_records_are_plain_frozen_values() -> None:
    target = make_target(REGISTRY, CURRENT[0], "2025", 0.5, SET_AT)
    assert isinstance(target, Target)
    with pytest.raises(AttributeError):
        target.ratio = 0.6  # type: ignore[misc]
    window = make_maintenance(REGISTRY, CURRENT[0], "2025-05-01T00:00:00Z", "2025-05-02T00:00:00Z", "r", SET_AT)
    assert isinstance(window, Maintenance) and window.key == f"maintenance:{CURRENT[0]}:20250501T000000Z"


@given(ratios)
def test_target_ratios_are_written_to_redis_as_plain_decimals(ratio: float) -> None:
    from streams.kafka.control import decimal_text

    text = decimal_text(ratio)
    assert "e" not in text and abs(float(text) - ratio) <= 5e-11


def test_a_record_of_the_first_key_form_is_still_read_and_rewritten_under_its_key() -> None:
    agency = CURRENT[0]
    window = make_maintenance(REGISTRY, agency, "2025-05-01T00:00:00Z", "2025-05-03T00:00:00Z", "upgrade", SET_AT)
    _, value = encode_record(window)
    key, record = parse_control_message(REGISTRY, maintenance_key(agency).encode(), value)
    assert key == f"maintenance:{agency}" and record is not None and record.key == key
    state = ControlState.of([record])
    # Cut at a later start: the rewrite keeps the old key, so it replaces the old record.
    later = make_maintenance(REGISTRY, agency, "2025-05-02T00:00:00Z", "2025-05-04T00:00:00Z", "again", SET_AT)
    sent = declaration_messages(state, later)
    assert [k for k, _ in sent] == [key.encode(), later.key.encode()]


# Windows on a grid of hours, so that overlaps and shared ends are frequent.
hours = st.integers(0, 60)
window_specs = st.lists(st.tuples(hours, st.integers(1, 30)), max_size=6)
BASE = datetime(2025, 5, 1, tzinfo=UTC)


def _window(agency: str, start_h: int, length_h: int, reason: str = "upgrade"):
    start, until = BASE + timedelta(hours=start_h), BASE + timedelta(hours=start_h + length_h)
    return make_maintenance(REGISTRY, agency, rfc3339(start, timedelta(hours=7)), rfc3339(until, timedelta(0)), reason, SET_AT)


def _state_of(windows) -> tuple[dict, ControlState]:
    records: dict = {}
    for window in windows:
        apply_latest(records, *parse_control_message(REGISTRY, *encode_record(window)))
    return records, ControlState.of(records.values())


def _apply(records: dict, messages) -> ControlState:
    for key, value in messages:
        apply_latest(records, *parse_control_message(REGISTRY, key, value))
    return ControlState.of(records.values())


def _hours_covered(windows) -> set[int]:
    return {h for w in windows for h in range((w.start_us - _us(BASE)) // 3_600_000_000, (w.until_us - _us(BASE)) // 3_600_000_000)}


@given(window_specs, hours, st.integers(1, 30))
def test_a_declared_window_replaces_what_it_overlaps_and_keeps_the_rest(existing, start_h: int, length_h: int) -> None:
    agency, other = CURRENT[0], CURRENT[1]
    records, state = _state_of([_window(agency, s, n, f"old{i}") for i, (s, n) in enumerate(existing)] + [_window(other, 0, 5)])
    before = state.maintenance.get(agency, ())
    new = _window(agency, start_h, length_h, "new")
    after = _apply(records, declaration_messages(state, new))
    new_hours = set(range(start_h, start_h + length_h))
    assert new in after.maintenance[agency]
    others = [w for w in after.maintenance[agency] if w.key != new.key]
    # No other window of the agency overlaps the new one...
    assert not _hours_covered(others) & new_hours
    # ...what the old windows covered before the new start is all still covered...
    assert {h for h in _hours_covered(before) if h < start_h} <= _hours_covered(others) | new_hours
    # ...windows clear of the new one are untouched, and other agencies are untouched.
    clear = [w for w in before if w.until_us <= new.start_us or w.start_us >= new.until_us]
    assert all(w in others for w in clear if w.key != new.key)
    assert after.maintenance[other] == state.maintenance[other]


@given(window_specs, hours)
def test_clearing_ends_the_window_in_effect_keeps_history_and_drops_what_is_to_come(existing, now_h: int) -> None:
    agency = CURRENT[0]
    records, state = _state_of([_window(agency, s, n, f"old{i}") for i, (s, n) in enumerate(existing)])
    now = BASE + timedelta(hours=now_h)
    now_us = _us(now)
    after = _apply(records, clearing_messages(state, agency, rfc3339(now, timedelta(0)), now_us))
    windows = after.maintenance.get(agency, ())
    assert after.maintenance_at(agency, now_us) is None and after.pending_maintenance(agency, now_us) is None
    assert all(w.until_us <= now_us for w in windows)
    past_hours = {h for h in _hours_covered(state.maintenance.get(agency, ())) if h < now_h}
    assert _hours_covered(windows) == past_hours
    assert clearing_messages(after, agency, rfc3339(now, timedelta(0)), now_us) == []


def test_a_window_touches_the_local_days_it_covers_and_their_months_quarters_and_years() -> None:
    # 2024-12-02 00:00 to 2024-12-22 00:00 in Asia/Ho_Chi_Minh: the 22nd itself is not touched.
    hue = make_maintenance(REGISTRY, "T46", "2024-12-02T00:00:00+07:00", "2024-12-22T00:00:00+07:00", "upgrade", SET_AT)
    assert periods_touched([hue]) == {f"2024-12-{d:02d}" for d in range(2, 22)} | {"2024-12", "2024-Q4", "2024"}
    # 2024-12-31T17:00Z is already 2025-01-01 in Việt Nam.
    new_year = make_maintenance(REGISTRY, "T46", "2024-12-31T16:00:00Z", "2024-12-31T18:00:00Z", "upgrade", SET_AT)
    assert periods_touched([new_year]) == {"2024-12-31", "2024-12", "2024-Q4", "2024", "2025-01-01", "2025-01", "2025-Q1", "2025"}
    # A mistaken decade-long window marks its months without every day.
    long = make_maintenance(REGISTRY, "T46", "2020-01-01T00:00:00+07:00", "2030-01-01T00:00:00+07:00", "typo", SET_AT)
    touched = periods_touched([long])
    assert {f"{y}-{m:02d}" for y in range(2020, 2030) for m in range(1, 13)} <= touched
    assert "2029-12-31" in touched and "2025-06-15" not in touched


@given(window_specs, st.integers(0, 5))
def test_withdrawing_removes_exactly_the_window_that_starts_then(existing, pick: int) -> None:
    agency, other = CURRENT[0], CURRENT[1]
    records, state = _state_of([_window(agency, s, n, f"old{i}") for i, (s, n) in enumerate(existing)] + [_window(other, 0, 5)])
    before = state.maintenance.get(agency, ())
    assume(before)
    gone = before[pick % len(before)]
    after = _apply(records, withdrawal_messages(state, agency, gone.start_us))
    assert list(after.maintenance.get(agency, ())) == [w for w in before if w is not gone]
    assert after.maintenance[other] == state.maintenance[other]
    assert withdrawal_messages(after, agency, gone.start_us) == []
