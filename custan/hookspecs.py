"""The hooks a custan plugin may implement, as pluggy specifications.

custan's own metrics, functions, sources and sinks arrive through these same
hooks (see ``custan.default_plugins``); docs/plugins.md shows a whole plugin.
"""

from __future__ import annotations

import pluggy

PROJECT = "custan"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_metrics(register):
    """Add per-customer aggregates that a metric's ``agg`` may name.

    Called each time custan compiles a rules file. ``register`` takes
    one ``custan.compiler.aggregates.Aggregate``; its ``build(value,
    condition)`` returns the SQLGlot aggregate expression, so the metric runs
    in the database next to the built-in ones. Returns nothing.
    """


@hookspec
def register_functions(register):
    """Add functions that rule expressions may call.

    Called each time custan compiles a rules file. ``register`` takes
    one ``custan.expressions.functions.Function``, whose ``compile(args,
    call)`` returns a ``Typed`` SQLGlot node. Returns nothing.
    """


@hookspec
def register_sources(register):
    """Add kinds of source that a rules file's ``source.kind`` may name.

    Called when custan looks up a source kind. ``register(kind, factory)``
    takes the kind and a callable ``factory(spec, data)`` that receives the
    file's ``custan.model.ruleset.Input`` and the ``--data`` value (or None)
    and returns an object with ``prepare(plan, connection)`` and
    ``describe(plan)`` (see ``custan.sources.base.Source``). Returns nothing.
    """


@hookspec
def register_sinks(register):
    """Add output formats that ``custan run --format`` may name.

    Called when the command line lists the ``--format`` choices and when
    ``custan run`` picks a sink. ``register(name, sink_class)`` takes the
    format name and a class whose instances have ``write(result, stream)``,
    where ``result`` is a ``custan.engine.Result``. A class that sets
    ``writes_files = False`` sends rows elsewhere, so custan builds it as
    ``sink_class(destination=...)`` with the ``--output`` value (or None) and
    passes standard output as ``stream``. Returns nothing.
    """


@hookspec
def before_run(rules):
    """Act before a run reads any data.

    Called by ``custan.api.run`` with the ``RuleSet``, once it has compiled.
    An exception stops the run. Returns nothing.
    """


@hookspec
def after_run(rules, result_summary):
    """Act after a run's query has finished, before any sink writes its rows.

    Called by ``custan.api.run`` with the ``RuleSet`` and a dict with keys
    ``file`` (the rules file), ``rows`` (the number of output rows),
    ``as_of`` (ISO 8601 text, or None) and ``values`` (summary value name to
    value). An exception stops the run. Returns nothing.
    """
