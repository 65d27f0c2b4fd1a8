"""Persistence: SQLAlchemy models, engine/session, repositories and Alembic migrations."""
