"""Feature store: definitions, point-in-time training sets, online features."""
