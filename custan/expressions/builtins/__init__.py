"""The built-in expression functions, grouped by kind."""

from custan.expressions.builtins.group import GROUP_FUNCTIONS
from custan.expressions.builtins.ranking import RANKING_FUNCTIONS
from custan.expressions.builtins.scalar import SCALAR_FUNCTIONS
from custan.expressions.builtins.time import TIME_FUNCTIONS

BUILTIN_FUNCTIONS = [
    *TIME_FUNCTIONS,
    *SCALAR_FUNCTIONS,
    *RANKING_FUNCTIONS,
    *GROUP_FUNCTIONS,
]
