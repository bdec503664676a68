"""Plain values shared by the engine, the store and the transports (no behaviour)."""
