"""Subcommands of ``kepler``, one module each."""
