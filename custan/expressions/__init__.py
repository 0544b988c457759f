"""The expression language: SQL syntax checked against an allow-list."""
