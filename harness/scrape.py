"""Reads samples out of a Prometheus text page, for tests and benchmarks that scrape loopd."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def samples(page: str, name: str, **labels: str) -> list[float]:
    """Every value of sample `name` whose labels include `labels`."""
    return [
        sample.value
        for family in text_string_to_metric_families(page)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    ]


def total(pages: list[str], name: str, **labels: str) -> float:
    """The sum of sample `name` over pages (one per process) and label values."""
    return sum(value for page in pages for value in samples(page, name, **labels))
