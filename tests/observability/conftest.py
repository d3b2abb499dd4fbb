"""Helpers for reading Prometheus text and capturing our log lines."""

from __future__ import annotations

import io

import pytest
from prometheus_client.parser import text_string_to_metric_families


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample `name{labels}` in an exposition, or None when absent."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


@pytest.fixture
def log_stream(restore_logging: None) -> io.StringIO:
    return io.StringIO()
