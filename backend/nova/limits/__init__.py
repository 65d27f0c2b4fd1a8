"""Fair sharing: request, token and concurrency limits per key and user."""
