"""The mission engine: beats, gates, pacing, feedback, delivery and the live loop."""
