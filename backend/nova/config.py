"""Settings: the one place configuration enters Nova (env prefix ``NOVA_``, optional ``.env``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Process configuration. Domain classes receive what they need from here, never read env."""

    model_config = SettingsConfigDict(env_prefix="NOVA_", env_file=".env", extra="ignore")

    env: Literal["dev", "prod", "test"] = "dev"
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    data_dir: Path = Path("data")
    log_level: str = "INFO"
    log_json: bool = True

    # Models and upstreams
    models_file: Path | None = None
    upstream_connect_timeout: float = 5.0
    upstream_ttft_timeout: float = 120.0
    upstream_chunk_timeout: float = 60.0
    upstream_total_timeout: float = 900.0
    upstream_pool_timeout: float = 10.0
    upstream_max_connections: int = 1024
    # Below vLLM's own idle keep-alive (uvicorn's 5 s), so a pooled connection is never reused
    # just as the server closes it.
    upstream_keepalive_seconds: float = 4.0
    upstream_retries: int = 2
    upstream_retry_backoff: float = 0.05
    health_interval: float = 5.0
    health_timeout: float = 2.0
    eject_after_failures: int = 3
    eject_seconds: float = 10.0

    # HTTP surface
    max_body_bytes: int = 8 * 1024 * 1024
    cors_origins: list[str] = Field(default_factory=list)
    static_dir: Path | None = None
    metrics_enabled: bool = True

    # Identity (bootstrap key until the identity store is configured)
    admin_api_key: SecretStr | None = None

    # Stores
    database_url: str | None = None
    redis_url: str | None = None
    rag_url: str | None = None
    rag_enabled: bool = True  # in-process RagService unless rag_url points at the rag service

    # Identity store, tokens and keys (issue 3)
    database_schema: str | None = None  # Postgres search_path (shared servers, test isolation)
    database_pool_size: int = 10
    redis_namespace: str = "nova"  # prefix for every Redis key and channel Nova owns
    redis_socket_timeout: float = 0.25  # seconds; Redis trouble must never hang a request
    redis_max_connections: int = 64  # per process, for rate limiting
    secret_key: SecretStr | None = None  # HMAC pepper for API key hashes; required when env=prod
    jwt_algorithm: Literal["HS256", "RS256"] = "HS256"
    jwt_secret: SecretStr | None = None  # HS256; required when env=prod
    jwt_private_key_file: Path | None = None  # RS256 (PEM)
    jwt_public_key_file: Path | None = None  # RS256 (PEM)
    jwt_issuer: str = "nova"
    jwt_audience: str = "nova-api"
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    signup_enabled: bool = False
    password_min_length: int = 10
    login_max_failures: int = 5
    login_lockout_seconds: int = 900
    login_failure_delay_seconds: float = 0.25  # x consecutive failures, capped at 2 s
    key_cache_ttl_seconds: float = 30.0
    key_last_used_flush_seconds: float = 15.0
    bootstrap_admin: bool | None = None  # first start creates an admin + key; None = only when env=dev
    bootstrap_admin_username: str = "admin"
    bootstrap_admin_password: SecretStr | None = None  # optional: lets the bootstrap admin log in to the UI
    auto_migrate: bool = True  # run Alembic migrations on gateway start
    # Defaults for keys users create themselves (None = unlimited); users may only tighten them.
    default_key_rpm: int | None = None
    default_key_tpm: int | None = None
    default_key_max_concurrent: int | None = None
    default_user_rpm: int | None = None

    # Limits
    limits_backend: Literal["auto", "redis", "memory"] = "auto"  # auto: redis when redis_url is set
    limits_fail_mode: Literal["open", "closed"] = "open"  # when Redis is unreachable
    # FastAPI's native OpenTelemetry middleware (spans/metrics/logs to the global providers): off by
    # default because it costs ~5% of the gateway's CPU per request even with no provider set up;
    # Nova's own Prometheus metrics and JSON logs are always on.
    otel_enabled: bool = False
    readiness_timeout: float = 1.0  # /health/ready: each store probe (database, Redis) gets this long
    limits_lease_ttl_seconds: int = 900  # a concurrency slot held by a crashed process expires

    # Usage accounting
    usage_flush_events: int = 500
    usage_flush_ms: int = 500
    usage_spool_file: Path | None = None  # default: data_dir/usage-spool.jsonl

    # RAG (nova.rag): embedder, reranker, vector store, ingestion, retrieval
    rag_embed_model: str = "sentence-transformers/all-MiniLM-L6-v2"  # prod: BAAI/bge-base-en-v1.5
    rag_embed_query_instruction: str | None = None  # None: known prefix for BGE models, else none
    rag_embed_batch_size: int = 32
    rag_device: str = "auto"  # auto (cuda when present) | cpu | cuda | cuda:N | mps
    rag_rerank_model: str | None = None  # prod: BAAI/bge-reranker-base; unset = reranking off
    rag_rerank_candidates: int = 50
    rag_vector_store: Literal["edge", "qdrant"] = "edge"  # edge: embedded qdrant-edge engine
    rag_qdrant_url: str | None = None  # qdrant server; unset with store=qdrant -> local mode in data dir
    rag_qdrant_api_key: SecretStr | None = None
    rag_qdrant_collection: str = "nova_chunks"
    rag_chunk_tokens: int = 256
    rag_chunk_overlap: int = 32
    rag_max_upload_bytes: int = 32 * 1024 * 1024
    rag_prefetch_limit: int = 100  # candidates per retriever before fusion
    rag_fusion: Literal["rrf", "dbsf"] = "rrf"
    rag_default_top_k: int = 5
    rag_context_max_chars: int = 6000  # budget for injected sources in grounded chat
    rag_service_token: SecretStr | None = None  # bearer shared by gateway and rag service
    rag_host: str = "127.0.0.1"
    rag_port: int = 8090
    rag_request_timeout: float = 120.0  # gateway -> rag service

    # Conversations and session memory (nova.memory, issue 4)
    memory_enabled: bool = True  # server-side conversations (conversation_id, /v1/conversations)
    memory_backend: Literal["auto", "redis", "memory"] = "auto"  # auto: redis when redis_url is set
    memory_ttl_seconds: int = 3600  # idle conversation windows expire from session memory
    memory_window_messages: int = 200  # most recent messages kept per conversation in session memory
    memory_local_max_conversations: int = 10000  # in-process backend: LRU bound
    memory_default_max_tokens: int = 1024  # reserved for the answer when the request sets no cap
    memory_default_context_window: int = 4096  # for models whose models-file entry has none
    memory_message_overhead_tokens: int = 8  # chat-template tokens per message (role markers)
    memory_tokenize_timeout: float = 2.0  # upstream /tokenize; the estimate is used past it
    memory_summarize: bool = False  # summarize turns that no longer fit, in the background
    memory_summary_max_tokens: int = 256
    memory_flush_batch: int = 256  # queued writes applied per transaction
    memory_flush_linger_ms: int = 50  # let a batch build up before writing it
    memory_flush_max_backoff: float = 5.0  # seconds between retries while the database is down
    memory_journal_file: Path | None = None  # embedded write queue; default data_dir/memory-journal.jsonl
    memory_drain_seconds: float = 10.0  # shutdown: time to flush the queue before leaving it durable
    ws_send_queue: int = 256  # WebSocket: frames buffered per socket before the slow client is closed
    ws_ping_interval: float = 20.0  # WebSocket keep-alive ping every N seconds
    ws_auth_timeout: float = 10.0  # the first frame must authenticate within this time
    ws_send_timeout: float = 10.0  # a client that leaves its send buffer full this long is closed (4429)

    @property
    def resolved_database_url(self) -> str:
        """SQLite file in the data dir is the embedded default (a property, not cached: a
        ``model_copy(update=...)`` must see its own ``database_url``)."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'nova.db').resolve()}"
