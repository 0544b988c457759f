"""The rules-file model: its JSON Schema, the YAML loader and the RuleSet."""

from custan.model.loader import load_rules, parse_rules, rules_schema
from custan.model.ruleset import RuleSet

__all__ = ["RuleSet", "load_rules", "parse_rules", "rules_schema"]
