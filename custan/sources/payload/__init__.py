"""The Payload API source: pushed-down customer aggregates, or fetched transactions."""

from custan.sources.payload.source import PayloadSource

__all__ = ["PayloadSource"]
