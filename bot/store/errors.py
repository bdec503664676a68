"""What can go wrong with the database file, in words a learner or operator can act on."""

from __future__ import annotations


class StoreError(Exception):
    """The database cannot be used; ``str()`` names the file and what to do (one line)."""


class StoreCorrupt(StoreError):
    """The file is not a readable SQLite database (or not Kepler's)."""


class StoreBusy(StoreError):
    """Another ``kepler play`` holds the database."""
