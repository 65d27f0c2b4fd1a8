"""LLM relay: OpenAI protocol handling, upstream pool, routing and the streaming relay."""
