"""The procedure catalogue and the portal fields of a calibrated profile (issue 14, item 6):
indicators 1 and 2 and the national portal's count as the bulletin published them (pure).

Like the fully-online dossiers (`streams/simulation/calibration.py`), the figures are quotas,
not draws: per unit and month, the number of procedures that receive dossiers (`used`), of
which at `full_online` with an online dossier (`full_used`), and the online dossiers received
through the national portal (`portal`); per unit, its catalogue size and its full-online
procedures. Block totals are the published rates, rounded where the rounding costs least; the
ministries' share of the procedures is the one the published national rate implies: for the
catalogue (indicator 1) at any scale, the provinces' catalogues growing beside the ministries'
smallest ones; for the procedures with dossiers (indicator 2) as far as the month's dossiers
allow (at a small scale the ministries keep enough used procedures for their own rate).

The simulator then gives each counted dossier, when it is received, a procedure and a portal
(`ProcedureDraw`): the first online dossiers received in the month cover the full-online
procedures to be used, the first others the other used procedures; later ones land on any used
procedure, never on an unused one. A unit's quotas need at most `COVER` of its dossiers of the
month (online ones for the full-online procedures), so they are covered although some of the
dossiers resolved in a month were received in the previous one.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from streams.domain.catalogue import LevelChange, Procedure
from streams.domain.registry import Registry
from streams.errors import InvariantError
from streams.simulation.calibration import Calibration, largest_remainder

Month = tuple[int, int]  # (year, month)

# Shares of a unit's dossiers resolved in a month that its quotas may need: all of them for the
# used procedures, online ones for the full-online used ones (some of a month's dossiers were
# received the month before; for a small unit whose few dossiers fall early in the month, many).
COVER = 0.55
COVER_ONLINE = 0.45
USED_CAP = {"ministry": 400, "province": 1000}  # procedures of a unit with dossiers in a month
USED_SHARE = {"ministry": 0.8, "province": 0.5}  # of a unit's catalogue, before the block shares are solved
MIN_BLOCK_USED = 30  # fewest procedures with dossiers in a block's month: its rate needs them
MIN_CATALOGUE = 8  # every unit has a catalogue, however few its dossiers
PORTAL_RECEIVED_SHARE = 0.75  # online dossiers received in a month per online dossier resolved in it, at least
CATALOGUE_FROM = date(2024, 1, 1)  # the simulated catalogue's levels are in force from this day
_NAMES = (
    "Cấp phiếu lý lịch tư pháp", "Đăng ký khai sinh", "Cấp giấy phép xây dựng", "Đăng ký thành lập doanh nghiệp",
    "Cấp giấy chứng nhận quyền sử dụng đất", "Cấp đổi giấy phép lái xe", "Đăng ký kết hôn", "Cấp giấy phép kinh doanh",
    "Chứng thực bản sao từ bản chính", "Cấp giấy phép lao động cho người nước ngoài", "Đăng ký thường trú",
    "Cấp giấy chứng nhận đủ điều kiện an toàn thực phẩm", "Cấp chứng chỉ hành nghề", "Thẩm định thiết kế cơ sở",
)


@dataclass(frozen=True, slots=True)
class MonthQuota:
    used: int  # procedures with at least one dossier received in the month
    full_used: int  # of which at full_online with at least one dossier received online
    portal: int  # online dossiers received through the national portal
    online_expected: int  # online dossiers the unit surely receives in the month (spaces the portal ones)


@dataclass(frozen=True, slots=True)
class UnitCatalogue:
    code: str
    block: str
    full: tuple[str, ...]  # procedure codes at full_online
    other: tuple[tuple[str, str], ...]  # (code, level) at partial_online or not_online
    months: Mapping[Month, MonthQuota]

    def used_in(self, month: Month) -> tuple[list[str], list[str]]:
        """(full-online procedures, other procedures) that receive dossiers in `month`; a
        different slice of the catalogue each month."""
        quota = self.months[month]
        offset = 7 * (month[0] * 12 + month[1])
        full = [self.full[(offset + i) % len(self.full)] for i in range(quota.full_used)]
        other = [self.other[(offset + i) % len(self.other)][0] for i in range(quota.used - quota.full_used)]
        return full, other


@dataclass(frozen=True, slots=True)
class ProcedurePlan:
    units: Mapping[str, UnitCatalogue]

    def totals(self, month: Month, block: str | None = None) -> dict[str, int]:
        """Planned figures of a month (all units, or a block's), for summaries and tests."""
        chosen = [u for u in self.units.values() if block is None or u.block == block]
        quotas = [u.months[month] for u in chosen if month in u.months]
        return {
            "procedures_in_force": sum(len(u.full) + len(u.other) for u in chosen),
            "full_online_procedures_in_force": sum(len(u.full) for u in chosen),
            "procedures_with_dossiers": sum(q.used for q in quotas),
            "full_online_procedures_with_online_dossiers": sum(q.full_used for q in quotas),
            "received_national_portal": sum(q.portal for q in quotas),
        }

    def records(self, registry: Registry, senders: Mapping[str, Iterable[str]]) -> list[Procedure]:
        """The catalogue records: each unit's procedures under its own code and under every code
        that sends its traffic in the window (`senders`: unit -> codes), in force from
        CATALOGUE_FROM or from the code's registry validity, whichever is later."""
        out: dict[str, Procedure] = {}
        for unit in self.units.values():
            levels = [(code, "full_online") for code in unit.full] + list(unit.other)
            for agency_code in sorted({unit.code, *senders.get(unit.code, ())}):
                agency = registry.get(agency_code)
                if agency is None:
                    continue
                valid_from = max(CATALOGUE_FROM, agency.valid_from)
                for code, level in levels:
                    name = _NAMES[int(code.replace(".", "")) % len(_NAMES)]
                    procedure = Procedure(agency_code, code, name, (LevelChange(valid_from, level),))
                    out[procedure.key] = procedure
        return [out[key] for key in sorted(out)]


class ProcedureDraw:
    """The procedures and portals of one unit's dossiers received in one month."""

    def __init__(self, unit: UnitCatalogue, month: Month) -> None:
        self.quota = unit.months[month]
        full, other = unit.used_in(month)
        self.used = full + other
        self._need_online = full[::-1]  # popped from the end: in catalogue order
        self._need_any = other[::-1]
        self._online = 0
        self._portal = 0

    def draw(self, rng: random.Random, online: bool, counted: bool = True) -> tuple[str, str | None]:
        """(procedure code, portal) of a dossier received in the month; the portal is None for
        a dossier not received online. `counted` False: a dossier that will count nowhere
        (voided), which covers nothing and takes no portal quota."""
        if not counted:
            return rng.choice(self.used), ("agency" if online else None)
        if online and self._need_online:
            code = self._need_online.pop()
        elif self._need_any:
            code = self._need_any.pop()
        else:
            code = rng.choice(self.used)
        if not online:
            return code, None
        # The national-portal quota, spaced evenly over the online dossiers the unit surely
        # receives in the month (a stride of online_expected / portal, the first at half a
        # stride), never more than it.
        k, quota, expected = self._online, self.quota.portal, max(self.quota.online_expected, 1)
        self._online += 1
        if self._portal < quota and ((k + 1) * quota * 2 + expected) // (2 * expected) > (k * quota * 2 + expected) // (2 * expected):
            self._portal += 1
            return code, "national"
        return code, "agency"


def plan_procedures(calibration: Calibration, volumes: Mapping[Month, Mapping[str, tuple[int, int]]],
                    month_days: Mapping[Month, float], scale: float) -> ProcedurePlan:
    """The procedure quotas of a window. `volumes`: month -> unit -> (resolved dossiers, of
    which online) as the traffic plan has them; `month_days`: the days of each month inside the
    window."""
    used_rates = calibration.procedure_rates["full_online_procedures_used"]
    blocks = {u.code: u.block for u in calibration.units}
    weights = {u.code: 0.5 + u.full_online_rate for u in calibration.units}  # better online, more full-online procedures
    reference = calibration.reference_period
    reference_days = (reference.last_day - reference.first_day).days + 1
    months: dict[str, dict[Month, MonthQuota]] = {u.code: {} for u in calibration.units}
    for month in sorted(volumes):
        volume = volumes[month]
        used = _used_quotas(calibration, used_rates, volume, blocks, weights)
        target = 0
        if calibration.received_national_portal is not None:
            target = math.floor(calibration.received_national_portal * scale * month_days[month] / reference_days + 0.5)
        codes = sorted(volume)
        expected = [math.floor(PORTAL_RECEIVED_SHARE * volume[c][1]) for c in codes]
        caps = [math.floor(0.9 * e) for e in expected]
        portal = _split_capped(min(target, sum(caps)), expected, caps)
        for code, e, p in zip(codes, expected, portal):
            months[code][month] = MonthQuota(used[code][0], used[code][1], p, e)
    return ProcedurePlan(_catalogues(calibration, months, weights))


def _used_quotas(calibration: Calibration, rates: Mapping[str, float], volume: Mapping[str, tuple[int, int]],
                 blocks: Mapping[str, str], weights: Mapping[str, float]) -> dict[str, tuple[int, int]]:
    caps = {c: min(max(1 if n else 0, math.floor(COVER * n)), USED_CAP[blocks[c]]) for c, (n, _) in volume.items()}
    online_caps = {c: math.floor(COVER_ONLINE * n_on) for c, (_, n_on) in volume.items()}
    out: dict[str, tuple[int, int]] = {}
    totals: dict[str, int] = {}
    for block in ("province", "ministry"):  # the ministries' total follows the provinces'
        codes = sorted(c for c in volume if blocks[c] == block)
        rate = rates[block]
        capacity = sum(caps[c] for c in codes)
        # As many as the online dossiers can cover at the block's rate.
        capacity = min(capacity, math.floor(sum(online_caps[c] for c in codes) / rate) if rate > 0 else capacity)
        # Every unit with dossiers has a procedure with dossiers: they must land somewhere.
        active = [c for c in codes if caps[c] > 0]
        capacity = max(capacity, len(active))
        if block == "province":
            total = _nice_total(rate, max(len(active), math.floor(0.9 * capacity)), capacity)
        else:
            share = calibration.ministry_procedure_share("full_online_procedures_used")
            lo = max(round(share / (1 - share) * totals.get("province", 0)), MIN_BLOCK_USED, len(active))
            lo = min(lo, capacity)
            total = _nice_total(rate, lo, min(capacity, lo + max(10, lo // 5)))
        totals[block] = total
        rest = [caps[c] - 1 if caps[c] > 0 else 0 for c in codes]
        used = [(1 if caps[c] > 0 else 0) + more for c, more in zip(codes, _split_capped(total - len(active), rest, rest))]
        full_caps = [min(u, online_caps[c]) for c, u in zip(codes, used)]
        full_total = min(math.floor(rate * total + 0.5), sum(full_caps))
        full = _split_capped(full_total, [u * weights[c] for c, u in zip(codes, used)], full_caps)
        out.update({c: (u, f) for c, u, f in zip(codes, used, full)})
    return out


def _catalogues(calibration: Calibration, months: Mapping[str, Mapping[Month, MonthQuota]],
                weights: Mapping[str, float]) -> dict[str, UnitCatalogue]:
    rates = calibration.procedure_rates["full_online_procedures"]
    by_block: dict[str, list[str]] = {}
    for unit in calibration.units:
        by_block.setdefault(unit.block, []).append(unit.code)
    need_full = {c: max((q.full_used for q in m.values()), default=0) for c, m in months.items()}
    need_other = {c: max((q.used - q.full_used for q in m.values()), default=0) for c, m in months.items()}
    size = {c: max(MIN_CATALOGUE, need_full[c] + need_other[c],
                   math.ceil(max((q.used for q in months[c].values()), default=0) / USED_SHARE[calibration.unit(c).block]))
            for c in months}
    full_size: dict[str, int] = {}
    share = calibration.ministry_procedure_share("full_online_procedures")

    def least(block: str) -> int:
        """The fewest procedures of a block: its units' sizes, and room for what its months use."""
        codes = by_block.get(block, ())
        return max(sum(size[c] for c in codes), math.ceil(sum(need_full[c] for c in codes) / rates[block]),
                   math.ceil(sum(need_other[c] for c in codes) / (1 - rates[block])))

    for block in ("province", "ministry"):
        codes = sorted(by_block.get(block, ()))
        rate = rates[block]
        wanted = least(block)
        if block == "province" and 0 < share < 1:
            # The ministries' fewest procedures are many at a small scale (every unit has a
            # catalogue): the provinces get as many as the published share implies beside them,
            # or the national indicator 1 leans to the ministries' rate.
            wanted = max(wanted, math.ceil((1 - share) / share * least("ministry")))
        if block == "ministry":
            wanted = max(wanted, math.ceil(share / (1 - share) * sum(size[c] for c in by_block.get("province", ()))))
        total = _nice_total(rate, wanted, wanted + max(10, wanted // 20))
        for code, more in zip(codes, largest_remainder(total - sum(size[c] for c in codes), [size[c] for c in codes])):
            size[code] += more
        slack = [size[c] - need_full[c] - need_other[c] for c in codes]
        extra = math.floor(rate * total + 0.5) - sum(need_full[c] for c in codes)
        for code, more in zip(codes, _split_capped(extra, [s * weights[c] for c, s in zip(codes, slack)], slack)):
            full_size[code] = need_full[code] + more
    out = {}
    for index, unit in enumerate(calibration.units):
        codes = [f"{1 + j // 1000}.{index:03d}{j % 1000:03d}" for j in range(size[unit.code])]
        random.Random(f"catalogue:{calibration.profile}:{unit.code}").shuffle(codes)
        full = tuple(sorted(codes[: full_size[unit.code]]))
        other = tuple((code, "not_online" if j % 3 == 2 else "partial_online")
                      for j, code in enumerate(sorted(codes[full_size[unit.code]:])))
        out[unit.code] = UnitCatalogue(unit.code, unit.block, full, other, dict(months[unit.code]))
    return out


def _nice_total(rate: float, lo: int, hi: int) -> int:
    """The size in [lo, hi] whose share at `rate`, rounded to a whole count, is nearest to it."""
    if hi <= lo:
        return max(hi, 0)
    return min(range(lo, hi + 1), key=lambda n: (abs(math.floor(rate * n + 0.5) / n - rate) if n else 1.0, n))


def _split_capped(total: int, weights: Sequence[float], caps: Sequence[int]) -> list[int]:
    """`total` split in proportion to `weights`, no part above its cap (total <= sum(caps))."""
    if total > sum(caps):
        raise InvariantError(f"cannot split {total} under the caps {list(caps)}")
    parts = [0] * len(caps)
    remaining = total
    open_ = [i for i, cap in enumerate(caps) if cap > 0]
    while remaining > 0:
        shares = [weights[i] for i in open_]
        if sum(shares) <= 0:
            shares = [caps[i] - parts[i] for i in open_]
        for i, part in zip(open_, largest_remainder(remaining, shares)):
            take = min(part, caps[i] - parts[i])
            parts[i] += take
            remaining -= take
        open_ = [i for i in open_ if parts[i] < caps[i]]
    return parts
