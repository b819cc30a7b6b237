"""Secondary indicators (issue 5, item 4) from the counts of contract section 3 (pure).

Each is a share `numerator / denominator` of counts of the same agency (or block) and period;
it is undefined (None, never 0) when the denominator is 0. The denominator of `on_time` is a
sum (`on_time + late`: resolved dossiers that had a `due_at`).

| indicator | snapshot field | numerator | denominator |
|---|---|---|---|
| online_payment | online_payment_rate | payments_online | payments |
| online_payment_amount | online_payment_amount_rate | payment_amount_online_vnd | payment_amount_vnd |
| digitization | digitization_rate | digitized | received |
| electronic_result | electronic_result_rate | electronic_results | completed |
| on_time | on_time_rate | on_time | on_time + late |
| online_received | online_received_rate | received_online | received |
| national_portal | national_portal_rate | received_national_portal | received_online |
| full_online_procedures | full_online_procedures_rate | full_online_procedures_in_force | procedures_in_force |
| full_online_procedures_used | full_online_procedures_used_rate | full_online_procedures_with_online_dossiers | procedures_with_dossiers |

The last two are the bulletin's indicators 1 and 2 (streams/domain/catalogue.py); the headline
`full_online_rate` is its indicator 3.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Indicator:
    name: str  # the `indicator` label of the metrics
    field: str  # the field of the Redis snapshot hashes
    numerator: str
    denominator: tuple[str, ...]  # summed

    def value(self, counts: Mapping[str, int]) -> float | None:
        return ratio(counts.get(self.numerator, 0), sum(counts.get(name, 0) for name in self.denominator))


INDICATORS: tuple[Indicator, ...] = (
    Indicator("online_payment", "online_payment_rate", "payments_online", ("payments",)),
    Indicator("online_payment_amount", "online_payment_amount_rate", "payment_amount_online_vnd", ("payment_amount_vnd",)),
    Indicator("digitization", "digitization_rate", "digitized", ("received",)),
    Indicator("electronic_result", "electronic_result_rate", "electronic_results", ("completed",)),
    Indicator("on_time", "on_time_rate", "on_time", ("on_time", "late")),
    Indicator("online_received", "online_received_rate", "received_online", ("received",)),
    Indicator("national_portal", "national_portal_rate", "received_national_portal", ("received_online",)),
    Indicator("full_online_procedures", "full_online_procedures_rate", "full_online_procedures_in_force",
              ("procedures_in_force",)),
    Indicator("full_online_procedures_used", "full_online_procedures_used_rate",
              "full_online_procedures_with_online_dossiers", ("procedures_with_dossiers",)),
)
INDICATOR_FIELDS: tuple[str, ...] = tuple(i.field for i in INDICATORS)


def ratio(numerator: int, denominator: int) -> float | None:
    """numerator / denominator; None when the denominator is 0 (undefined, not 0 %)."""
    return numerator / denominator if denominator > 0 else None


def indicators(counts: Mapping[str, int]) -> dict[str, float]:
    """indicator name -> value, for the defined ones only."""
    out: dict[str, float] = {}
    for indicator in INDICATORS:
        value = indicator.value(counts)
        if value is not None:
            out[indicator.name] = value
    return out


def indicator_fields(counts: Mapping[str, int]) -> dict[str, str]:
    """Snapshot field -> decimal string with 6 places, for the defined ones only (as the
    Redis hashes hold them)."""
    out: dict[str, str] = {}
    for indicator in INDICATORS:
        value = indicator.value(counts)
        if value is not None:
            out[indicator.field] = f"{value:.6f}"
    return out
