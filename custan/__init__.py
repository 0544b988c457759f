"""custan: customer analytics on payment transactions, described in YAML.

>>> from custan import load_rules, run
>>> result = run("rules/rfm.yaml")  # doctest: +SKIP
"""

from custan.api import compile_rules, compiled_sql, load_rules, run
from custan.errors import CustanError, DataError, RulesError, RunError

__version__ = "0.1.0"

__all__ = [
    "CustanError",
    "DataError",
    "RulesError",
    "RunError",
    "compile_rules",
    "compiled_sql",
    "load_rules",
    "run",
]
