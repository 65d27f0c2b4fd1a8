"""Nova: a self-hosted LLM platform (gateway, RAG, memory, observability)."""

__version__ = "0.1.0"
