"""Repositories: plain classes over one ``AsyncSession``; callers own the transaction."""
