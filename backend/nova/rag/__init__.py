"""Retrieval-augmented generation: embedder, sparse encoder, chunker, extraction, vector stores
(qdrant-edge embedded, qdrant-client server/local), ingestion jobs, hybrid search, reranking,
grounded chat, evaluation, and the rag service app.

Entry points: ``nova.rag.factory.open_rag_backend(settings)`` gives the gateway a ``RagBackend``
(in-process ``RagService`` or ``RagHttpClient``); ``nova.rag.service_app.create_rag_app`` is the
rag service; ``nova.rag.cli.register`` adds ``nova ingest``, ``nova eval retrieval``, ``nova serve-rag``.
Importing this package is cheap: torch and the models load only when a service starts.
"""
