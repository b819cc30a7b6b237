"""`emc local`: the whole thing on one machine.

Starts a Tansu broker and a redis-server on free loopback ports, one worker (a child
process, exactly as `emc worker`), replays one month of calibrated national traffic
(`--profile 2024`: December 2024 by default) compressed into about a minute, and prints a
live summary read back from Redis (national and block rates, top provinces and ministries)
until Ctrl-C, --duration, or (--exit-when-done) the snapshots hold the whole month.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import redis

from streams.domain.instants import US_PER_HOUR, US_PER_S, VN_FIXED_OFFSET, us_of, utc_datetime_of_us
from streams.domain.periods import parse_period
from streams.domain.rankings import DEFAULT_THRESHOLD
from streams.domain.registry import BLOCKS, SCOPES, Registry
from streams.domain.signatures import Keyring
from streams.errors import ConfigError, ExternalServiceError
from streams.kafka.producer import EventProducer
from streams.local.stack import (
    REDIS_ACL_FILE,
    REDIS_DEV_READER,
    REDIS_DEV_WRITER,
    free_port,
    start_redis,
    start_tansu,
    wait_for_port,
)
from streams.security.keyring_file import keyring_for_agencies, save_keyring
from streams.settings import ENV_VARS, Settings, load_settings, redacted_url
from streams.simulation.pacing import Pacer
from streams.simulation.profile import ProfileConfig, ProfileSimulation
from streams.simulation.traffic import declare_catalogue, declare_maintenance, procedure_plan_lines, pump
from streams.sinks.keys import RedisKeys

SUMMARY_EVERY_S = 5.0


def worker_environment(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    for name, var in ENV_VARS.items():
        env[var] = str(getattr(settings, name))
    return env


def start_worker(settings: Settings, log_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "worker"],
        env=worker_environment(settings), stdout=log_path.open("ab"), stderr=subprocess.STDOUT,
    )


def _current_month_so_far(now: datetime) -> tuple[str, datetime, datetime]:
    """The current Asia/Ho_Chi_Minh month, as text, and its window from the first instant to `now`."""
    local = now.astimezone(VN_FIXED_OFFSET)
    return f"{local:%Y-%m}", local.replace(day=1, hour=0, minute=0, second=0, microsecond=0), now


def _month_of(args: argparse.Namespace, default: str) -> str:
    text = args.month or default
    try:
        period = parse_period(text)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if period.window != "month":
        raise ConfigError(f"--month: {text!r} is not a month (YYYY-MM)")
    return period.text


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # the same clean stop as Ctrl-C: the worker, Redis and the broker go too


def run_local(args: argparse.Namespace, config_for: Callable[..., ProfileConfig]) -> int:
    """Run it all with the flags of `emc local` (streams/cli/local.py); `config_for(**window)` is
    the traffic profile of those flags over a window (`period=` or `start=`, `end=`)."""
    if args.seconds <= 0:
        raise ConfigError("--seconds must be positive")
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    if args.month == "now":
        month, start, end = _current_month_so_far(datetime.now(timezone.utc))
        simulation = ProfileSimulation(config_for(start=start, end=end))
    else:
        month = _month_of(args, {"2024": "2024-12", "2025": "2025-04"}[args.profile])
        simulation = ProfileSimulation(config_for(period=month))
    workdir: Path = args.workdir.resolve()
    # The broker keeps its data in memory: state left by an earlier run would not match it.
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    print(f"emc local: starting in {workdir}", flush=True)
    broker = start_tansu(workdir)
    redis_server = start_redis(workdir / "redis", aclfile=REDIS_ACL_FILE)  # least privilege, as deployed
    # Signed events, enforced, as in production: one generated key per agency.
    keyring_path = workdir / "keyring.json"
    keyring = keyring_for_agencies([a.code for a in Registry.load()], us_of(datetime.now(timezone.utc)) - US_PER_HOUR)
    save_keyring(keyring, keyring_path)
    settings = load_settings({
        "broker": f"kafka://127.0.0.1:{broker.port}",
        "redis_url": "redis://{}:{}@127.0.0.1:{}/0".format(*REDIS_DEV_WRITER, redis_server.port),
        "metrics_port": args.metrics_port or free_port(),
        "data_dir": str(workdir / "worker-data"),
        "partitions": 4,
        "auth": "enforce",
        "keyring": str(keyring_path),
    }, environ={})
    worker = start_worker(settings, workdir / "worker.log")
    try:
        wait_for_port(settings.metrics_port, 60, worker, "emc worker")
        print(f"  broker   {settings.broker}   (topic {settings.input_topic})")
        print(f"  redis    {redacted_url(settings.redis_url)}   (keys {settings.redis_prefix}*; users of {REDIS_ACL_FILE.name})")
        print(f"  metrics  http://127.0.0.1:{settings.metrics_port}/metrics")
        print(f"  keys     {keyring_path}   (EMC_AUTH=enforce: every event signed, {len(keyring)} agency keys)")
        print(f"  logs     {workdir}/worker.log", flush=True)
        reader_url = "redis://{}:{}@127.0.0.1:{}/0".format(*REDIS_DEV_READER, redis_server.port)
        summary = _Summary(settings, worker, simulation, month, reader_url)
        summary.intro()
        deadline = time.monotonic() + args.duration if args.duration > 0 else None
        _publish_traffic(settings, simulation, args.seconds, summary, deadline, keyring)
        summary.watch(deadline, args.exit_when_done)
    except KeyboardInterrupt:
        print("\nemc local: stopping")
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        redis_server.stop()
        broker.stop()
    return 0


class _Stop(Exception):
    """--duration reached while publishing."""


def _publish_traffic(settings: Settings, simulation: ProfileSimulation, seconds: float, summary: _Summary,
                     deadline: float | None, keyring: Keyring) -> None:
    speedup = (simulation.end_us - simulation.start_us) / US_PER_S / seconds
    started = time.monotonic()

    def tick(count: int, at_us: int) -> None:
        summary.maybe_print(count, at_us)
        if deadline is not None and time.monotonic() > deadline:
            raise _Stop

    declare_maintenance(settings, simulation)
    declare_catalogue(settings, simulation)
    with EventProducer(settings, keyring) as producer:
        try:
            pacer = Pacer(speedup=speedup, window=(simulation.start_us, simulation.end_us))
            count = pump(simulation.messages(), pacer, None,
                         lambda m: producer.send(m.key, m.value), tick)
        except _Stop:
            print("  traffic  stopped: --duration reached", flush=True)
            return
        producer.flush()
    print(f"  traffic  {count:,} messages published in {time.monotonic() - started:.1f} s "
          f"(the whole of {summary.month})", flush=True)


@dataclass
class _Summary:
    settings: Settings
    worker: subprocess.Popen
    simulation: ProfileSimulation
    month: str
    reader_url: str  # the summary only reads: the read-only Redis user

    def __post_init__(self) -> None:
        self.client = redis.Redis.from_url(self.reader_url, decode_responses=True)
        self.registry = Registry.load()
        self.last = 0.0
        self.planned_full, self.planned = self.simulation.plan.totals()
        self.name_day = parse_period(self.month).last_day  # units named as in that month

    def intro(self) -> None:
        plan = self.simulation.plan
        calibration = self.simulation.calibration
        print(f"  traffic  profile {calibration.profile}, {self.month}: {self.planned:,} resolved dossiers, "
              f"{plan.rate():.2%} fully online (ministries {plan.rate('ministry'):.2%}, provinces {plan.rate('province'):.2%})")
        if calibration.national_rate is not None:
            blocks = calibration.block_rates
            print(f"           EMC published for {calibration.reference_period.text}: {calibration.national_rate:.2%} "
                  f"(ministries {blocks['ministry']:.2%}, provinces {blocks['province']:.2%})", flush=True)
        for line in procedure_plan_lines(self.simulation, self.month):
            print(f"           {line}", flush=True)

    def maybe_print(self, count: int, at_us: int) -> None:
        now = time.monotonic()
        if now - self.last >= SUMMARY_EVERY_S:
            self.last = now
            at_us = min(max(at_us, self.simulation.start_us), self.simulation.end_us)
            clock = utc_datetime_of_us(at_us).astimezone(VN_FIXED_OFFSET).strftime("%Y-%m-%d %H:%M")
            print(f"  [{clock} +07:00] {count:,} message{'s' if count != 1 else ''} published", flush=True)
            self.print_figures()

    def print_figures(self) -> tuple[int, int]:
        """Print the month's figures from Redis; returns the (full online, resolved) found."""
        if self.worker.poll() is not None:
            raise ExternalServiceError(f"the worker exited with code {self.worker.returncode}; see its log")
        keys, month = RedisKeys(self.settings.redis_prefix), self.month
        blocks = {b: self.client.hgetall(keys.block(b, month)) for b in SCOPES}
        resolved = int(blocks["national"].get("resolved", "0"))
        found = (int(blocks["national"].get("full_online", "0")), resolved)
        if "full_online_rate" not in blocks["national"]:
            print(f"  {month}: waiting for data", flush=True)
            return found
        rates = {b: _pct(fields.get("full_online_rate")) for b, fields in blocks.items()}
        print(f"  {month}: resolved {resolved}, full online {rates['national']} "
              f"(ministries {rates['ministry']}, provinces {rates['province']})", flush=True)
        if self.simulation.procedures is not None:  # the three toàn trình rates, as the bulletin gives them
            for field, title in (("full_online_procedures_rate", "1. full-online procedures"),
                                 ("full_online_procedures_used_rate", "2. used full-online procedures")):
                shown = {b: _pct(fields.get(field)) for b, fields in blocks.items()}
                print(f"    {title} {shown['national']} (ministries {shown['ministry']}, provinces {shown['province']})",
                      flush=True)
            print(f"    national portal: {int(blocks['national'].get('received_national_portal', '0')):,} online dossiers "
                  f"received ({_pct(blocks['national'].get('national_portal_rate'))} of online)", flush=True)
        for block, title in (("province", "top provinces"), ("ministry", "top ministries")):
            ranking = self.client.zrevrange(keys.rank(block, month), 0, 4, withscores=True)
            if ranking:
                names = ", ".join(f"{self._short(code)} {score * 100:.1f} %" for code, score in ranking)
                print(f"    {title}: {names}", flush=True)
        under = {b: self.client.zcount(keys.rank(b, month), 0, f"({float(DEFAULT_THRESHOLD)}") for b in BLOCKS}
        print(f"    under {float(DEFAULT_THRESHOLD) * 100:.0f} %: {under['ministry']} ministries, {under['province']} provinces", flush=True)
        return found

    def watch(self, deadline: float | None, exit_when_done: bool) -> None:
        done = False
        while deadline is None or time.monotonic() < deadline:
            time.sleep(max(0.0, SUMMARY_EVERY_S - (time.monotonic() - self.last)))
            self.last = time.monotonic()
            if self.print_figures() == (self.planned_full, self.planned) and not done:
                done = True
                print(f"  done     Redis holds all {self.planned:,} resolved dossiers of {self.month}", flush=True)
                if exit_when_done:
                    return

    def _short(self, code: str) -> str:
        agency = self.registry.get(code)
        return agency.named_on(self.name_day).short_name if agency else code


def _pct(text: str | None) -> str:
    return f"{float(text) * 100:.2f} %" if text else "-"
