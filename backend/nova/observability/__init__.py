"""Metrics, JSON logs and request ids shared by every Nova service."""
