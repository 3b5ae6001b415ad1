"""Metrics leave each invocation flushed: never carried into the next one."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.observability import metrics, observe


def _counting(event: Any) -> str:
    metrics.add_metric(name="bench_messages", unit="Count", value=1)
    return "done"


def test_disabled_metrics_do_not_pile_up_across_invocations(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Powertools neither prints nor clears a disabled set on flush, and prints the pile
    # anyway once a metric holds 100 values: the benchmark's stray EMF line.
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    for _ in range(150):
        assert observe("test", object(), _counting) == "done"
    assert metrics.metric_set == {}
    assert "CloudWatchMetrics" not in capsys.readouterr().out


def test_enabled_metrics_are_printed_once_per_invocation(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    for _ in range(3):
        observe("test", object(), _counting)
    lines = [line for line in capsys.readouterr().out.splitlines() if "CloudWatchMetrics" in line]
    assert len(lines) == 3
    assert all('"bench_messages"' in line for line in lines)
    assert metrics.metric_set == {}
