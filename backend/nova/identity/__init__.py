"""Who is calling: principals, authentication, users, API keys, tokens."""
