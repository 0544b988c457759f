"""Helpers for testing custan against local stand-ins for external services."""
