"""custan's own metrics, functions, sources and sinks, registered as a plugin.

They go through the same hooks as installed plugins, so they show up in
``custan plugins --all`` and a plugin cannot silently replace them.
"""

from __future__ import annotations

import importlib.util

from custan.compiler.aggregates import BUILTIN_AGGREGATES
from custan.expressions.functions import BUILTIN_FUNCTIONS
from custan.hookspecs import hookimpl
from custan.model.ruleset import Input
from custan.sinks.table import TableSink
from custan.sinks.text_formats import CsvSink, JsonLinesSink, JsonSink
from custan.sources.file_source import FileSource

PAYLOAD_PACKAGE = "custan.sources.payload"


@hookimpl
def register_metrics(register):
    for aggregate in BUILTIN_AGGREGATES:
        register(aggregate)


@hookimpl
def register_functions(register):
    for function in BUILTIN_FUNCTIONS:
        register(function)


@hookimpl
def register_sources(register):
    register("files", FileSource)
    if importlib.util.find_spec(PAYLOAD_PACKAGE) is not None:
        register("payload", payload_source)


def payload_source(spec: Input, data: str | None = None):
    """Build the Payload API source, importing its package only when a file uses it."""
    from custan.sources.payload import PayloadSource

    return PayloadSource(spec, data)


@hookimpl
def register_sinks(register):
    for sink_class in (TableSink, CsvSink, JsonSink, JsonLinesSink):
        register(sink_class.name, sink_class)
