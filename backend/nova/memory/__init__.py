"""Server-side conversations: session memory, context-window assembly, durable message writes."""
