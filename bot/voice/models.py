"""The Claude models the voice uses by default: names only, so that choosing one (settings,
``build_voice``'s defaults) does not import the Anthropic SDK (~3 s on a small machine)."""

from __future__ import annotations

DEFAULT_MODEL = "claude-sonnet-5-5"  # claude-sonnet-4-5 reaches end-of-life 2026-11-30
SUMMARY_MODEL = "claude-haiku-5-5"
