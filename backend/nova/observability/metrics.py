"""Prometheus metric families for every Nova service (names are a public contract: dashboards
and alert rules use them).

Multiprocess-safe: when ``PROMETHEUS_MULTIPROC_DIR`` is set (several workers), prometheus-client
writes values to mmap files in that directory and ``render`` aggregates them.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
_FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

REQUESTS = Counter("nova_requests", "Requests served by the gateway.", ["route", "model", "status"])
REQUEST_DURATION = Histogram(
    "nova_request_duration_seconds",
    "Time from request to last byte.",
    ["route", "model"],
    buckets=_LATENCY_BUCKETS,
)
TTFT = Histogram(
    "nova_time_to_first_token_seconds",
    "Time from request to first streamed token.",
    ["model"],
    buckets=_TTFT_BUCKETS,
)
TOKENS = Counter("nova_tokens", "Tokens metered from upstream usage.", ["model", "kind"])
UPSTREAM_IN_FLIGHT = Gauge(
    "nova_upstream_requests_in_flight",
    "Requests outstanding per upstream.",
    ["upstream"],
    multiprocess_mode="livesum",
)
UPSTREAM_ERRORS = Counter("nova_upstream_errors", "Upstream failures by kind.", ["upstream", "kind"])
UPSTREAM_HEALTHY = Gauge(
    "nova_upstream_healthy",
    "1 when the upstream is in rotation.",
    ["model", "upstream"],
    multiprocess_mode="liveall",
)
UPSTREAM_RETRIES = Counter("nova_upstream_retries", "Retries to another replica.", ["model"])
CLIENT_DISCONNECTS = Counter("nova_client_disconnects", "Clients gone before the response ended.", ["route"])
RATE_LIMITED = Counter("nova_rate_limited", "Requests refused by a limit.", ["scope"])
AUTH_FAILURES = Counter("nova_auth_failures", "Rejected credentials.")
USAGE_EVENTS = Counter("nova_usage_events", "Usage events by outcome.", ["outcome"])
RAG_SEARCH_DURATION = Histogram(
    "nova_rag_search_duration_seconds", "Retrieval latency.", ["mode"], buckets=_FAST_BUCKETS
)
RAG_RERANK_DURATION = Histogram(
    "nova_rag_rerank_duration_seconds", "Cross-encoder reranking latency.", buckets=_LATENCY_BUCKETS
)
RAG_EMBED_DURATION = Histogram(
    "nova_rag_embed_duration_seconds", "Embedding batch latency.", buckets=_LATENCY_BUCKETS
)
RAG_INGEST_CHUNKS = Counter("nova_rag_ingest_chunks", "Chunks written to the vector store.")
RAG_DOCUMENTS = Counter("nova_rag_documents", "Documents finished ingesting by status.", ["status"])
MEMORY_ASSEMBLY = Histogram(
    "nova_memory_assembly_seconds", "Loading and fitting conversation history.", buckets=_FAST_BUCKETS
)
STORE_QUEUE_DEPTH = Gauge(
    "nova_store_queue_depth", "Writes waiting for the database.", multiprocess_mode="livesum"
)


def render() -> tuple[bytes, str]:
    """Exposition text for ``/metrics`` (aggregated across worker processes when multiprocess)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
