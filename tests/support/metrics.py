"""Reading Prometheus samples out of /metrics text or a collector registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def samples(text: str, name: str) -> list[Sample]:
    """Every sample called `name` in the exposition `text`."""
    return [s for family in text_string_to_metric_families(text) for s in family.samples if s.name == name]


def sample_values(source: str | CollectorRegistry, name: str) -> dict[tuple, float]:
    """Sorted label pairs -> value of every sample called `name`, from text or a registry."""
    text = source if isinstance(source, str) else generate_latest(source).decode()
    return {tuple(sorted(s.labels.items())): s.value for s in samples(text, name)}
