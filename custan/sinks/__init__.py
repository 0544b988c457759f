"""Sinks: where a run's rows go (table, CSV, JSON, JSON lines, plugins)."""
