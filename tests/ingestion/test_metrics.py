"""The metrics of ingestion and search (``parley.metrics``) keep their labels bounded."""

from __future__ import annotations

from parley.metrics import PrometheusMetrics


def test_search_and_ingestion_metrics_by_their_labels() -> None:
    metrics = PrometheusMetrics()
    metrics.search_duration(0.004, source="file_search", mode="words")
    metrics.search_duration(0.03, source="someone", mode="sideways")
    metrics.file_indexed("completed", 1.5)
    metrics.file_indexed("failed", None)  # ended without work: counted, not timed
    metrics.ingestion_queue(7)
    text = metrics.exposition()[0].decode()
    assert 'parley_search_duration_seconds_count{mode="words",source="file_search"} 1.0' in text
    assert 'parley_search_duration_seconds_count{mode="other",source="other"} 1.0' in text
    assert 'parley_files_indexed_total{outcome="completed"} 1.0' in text
    assert 'parley_files_indexed_total{outcome="failed"} 1.0' in text
    assert 'parley_ingestion_duration_seconds_count{outcome="completed"} 1.0' in text
    assert 'parley_ingestion_duration_seconds_count{outcome="failed"}' not in text
    assert "parley_ingestion_queue 7.0" in text
