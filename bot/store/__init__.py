"""Persistence: the store interface and its SQLite implementation."""
