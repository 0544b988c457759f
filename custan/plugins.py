"""Find custan's plugins and collect the metrics, functions, sources and sinks.

Built-ins are registered as the default plugin through the same hooks as
installed plugins, which come from entry points of group ``custan``, loaded
lazily and once, each on its own so that one failing to import spares the rest.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from custan import default_plugins, hookspecs
from custan.compiler.aggregates import MODE, Aggregate
from custan.errors import PluginError
from custan.expressions.functions import Function, FunctionTable

logger = logging.getLogger("custan.plugins")

ENTRY_POINT_GROUP = "custan"
DISABLE_VARIABLE = "CUSTAN_DISABLE_PLUGINS"
BUILTIN_PLUGIN = "custan"


@dataclass(frozen=True)
class PluginProblem:
    """A plugin that failed to import, or a hook of it that failed."""

    plugin: str
    hook: str | None
    message: str

    def __str__(self) -> str:
        if self.hook is None:
            return f"plugin '{self.plugin}' failed to import: {self.message}"
        return f"plugin '{self.plugin}', hook {self.hook}: {self.message}"


@dataclass(frozen=True)
class Distribution:
    """The installed distribution an entry-point plugin comes from."""

    name: str
    version: str


@dataclass
class _Discovery:
    """Entry-point plugins, loaded once and registered only while enabled."""

    loaded: bool = False
    enabled: bool = True
    plugins: dict[str, Any] = field(default_factory=dict)
    distributions: dict[str, Distribution] = field(default_factory=dict)
    failures: list[PluginProblem] = field(default_factory=list)


_manager: pluggy.PluginManager | None = None
_discovery = _Discovery()
_reported: set[str] = set()


def get_plugin_manager() -> pluggy.PluginManager:
    """Return the shared plugin manager, loading entry points on first use."""
    global _manager
    if _manager is None:
        _manager = pluggy.PluginManager(hookspecs.PROJECT)
        _manager.add_hookspecs(hookspecs)
        _manager.register(default_plugins, name=BUILTIN_PLUGIN)
    _sync_entry_points(_manager)
    return _manager


def use_entry_points(enabled: bool) -> None:
    """Turn discovery of installed plugins on or off; built-ins stay either way."""
    _discovery.enabled = enabled
    if _manager is not None:
        _sync_entry_points(_manager)


def reset_entry_points() -> None:
    """Forget discovered plugins and reported problems, so the next use loads again.

    For tests that install or fake a distribution while the process runs.
    """
    global _discovery
    if _manager is not None:
        for name in _discovery.plugins:
            if _manager.has_plugin(name):
                _manager.unregister(name=name)
    _discovery = _Discovery(enabled=_discovery.enabled)
    _reported.clear()


def entry_points_enabled() -> bool:
    return _discovery.enabled and os.environ.get(DISABLE_VARIABLE, "") in ("", "0")


def _sync_entry_points(manager: pluggy.PluginManager) -> None:
    if not entry_points_enabled():
        for name in _discovery.plugins:
            if manager.has_plugin(name):
                manager.unregister(name=name)
        return
    if not _discovery.loaded:
        _discovery.loaded = True
        _load_entry_points()
    for name, plugin in _discovery.plugins.items():
        if not manager.has_plugin(name):
            _register(manager, name, plugin)


def _load_entry_points() -> None:
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.name in _discovery.plugins:
            continue
        if entry_point.dist is not None:
            distribution = Distribution(entry_point.dist.name, entry_point.dist.version)
            _discovery.distributions[entry_point.name] = distribution
        try:
            _discovery.plugins[entry_point.name] = entry_point.load()
        except Exception as error:  # noqa: BLE001 - a plugin's import may raise anything
            _record(PluginProblem(entry_point.name, None, _describe(error)))


def _register(manager: pluggy.PluginManager, name: str, plugin: Any) -> None:
    try:
        manager.register(plugin, name=name)
    except (ValueError, pluggy.PluginValidationError) as error:
        del _discovery.plugins[name]
        _record(PluginProblem(name, None, _describe(error)))


def _record(problem: PluginProblem) -> None:
    _discovery.failures.append(problem)
    _report(problem)


def _report(problem: PluginProblem) -> None:
    # Registries are collected several times per run; warn about each once.
    text = str(problem)
    if text not in _reported:
        _reported.add(text)
        logger.warning("%s", text)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def import_failures() -> list[PluginProblem]:
    """Return the installed plugins that could not be imported or registered."""
    get_plugin_manager()
    return list(_discovery.failures) if entry_points_enabled() else []


@dataclass
class Registry:
    """Name to registered object, which plugin registered it, and what failed."""

    kind: str
    entries: dict[str, Any] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    problems: list[PluginProblem] = field(default_factory=list)

    def add(self, plugin: str, hook: str, name: str, value: Any) -> None:
        owner = self.owners.get(name)
        if owner is not None:
            raise _Rejected(
                f"{self.kind} '{name}' is already registered by plugin '{owner}'"
            )
        self.entries[name] = value
        self.owners[name] = plugin


class _Rejected(Exception):
    """A registration that the registry turned down; the plugin keeps going."""


Adapter = Callable[[Registry, str, str], Callable[..., None]]


def _collect(
    hook_name: str, kind: str, adapter: Adapter, reserved: dict[str, str] | None = None
) -> Registry:
    """Call every implementation of a ``register_*`` hook, each on its own.

    Built-ins are registered first, so they keep their names; a later plugin
    registering a taken name, or raising, is recorded and skipped.
    """
    registry = Registry(kind, owners=dict(reserved or {}))
    caller = getattr(get_plugin_manager().hook, hook_name)
    for implementation in caller.get_hookimpls():
        plugin = implementation.plugin_name
        register = adapter(registry, plugin, hook_name)
        try:
            implementation.function(*[register for _ in implementation.argnames])
        except Exception as error:  # noqa: BLE001 - a plugin's hook may raise anything
            problem = PluginProblem(plugin, hook_name, f"raised {_describe(error)}")
            registry.problems.append(problem)
            _report(problem)
    return registry


def _named(
    registry: Registry,
    plugin: str,
    hook: str,
    expected: type[Aggregate] | type[Function],
    label: str,
) -> Callable[[Any], None]:
    def register(value: Any) -> None:
        if not isinstance(value, expected):
            message = f"expected {label}, got {type(value).__name__}"
        else:
            try:
                registry.add(plugin, hook, value.name, value)
                return
            except _Rejected as rejected:
                message = str(rejected)
        problem = PluginProblem(plugin, hook, message)
        registry.problems.append(problem)
        _report(problem)

    return register


def _keyed(registry: Registry, plugin: str, hook: str) -> Callable[[str, Any], None]:
    def register(name: str, value: Any) -> None:
        try:
            registry.add(plugin, hook, name, value)
        except _Rejected as rejected:
            problem = PluginProblem(plugin, hook, str(rejected))
            registry.problems.append(problem)
            _report(problem)

    return register


def _metric_adapter(registry: Registry, plugin: str, hook: str):
    return _named(registry, plugin, hook, Aggregate, "an Aggregate")


def _function_adapter(registry: Registry, plugin: str, hook: str):
    return _named(registry, plugin, hook, Function, "a Function")


def metrics() -> Registry:
    """Collect the aggregates of every plugin; ``mode`` stays custan's own."""
    return _collect(
        "register_metrics", "metric", _metric_adapter, reserved={MODE: BUILTIN_PLUGIN}
    )


def aggregates() -> dict[str, Aggregate]:
    """Return aggregate name to definition, for ``compile_rules``."""
    return dict(metrics().entries)


def function_table() -> FunctionTable:
    """Return the functions rule expressions may call, for ``compile_rules``."""
    registry = _collect("register_functions", "function", _function_adapter)
    return FunctionTable(dict(registry.entries))


def sources() -> Registry:
    """Collect source kind to factory ``factory(spec, data)``."""
    return _collect("register_sources", "source", _keyed)


def sinks() -> Registry:
    """Collect output format name to sink class."""
    return _collect("register_sinks", "sink", _keyed)


def call_lifecycle(hook_name: str, **arguments: Any) -> None:
    """Call ``before_run`` or ``after_run`` on every plugin.

    Raises PluginError naming the plugin and the hook when one raises.
    """
    caller = getattr(get_plugin_manager().hook, hook_name)
    for implementation in reversed(caller.get_hookimpls()):
        values = [arguments[name] for name in implementation.argnames]
        try:
            implementation.function(*values)
        except Exception as error:  # a plugin's hook may raise anything
            problem = PluginProblem(
                implementation.plugin_name, hook_name, f"raised {_describe(error)}"
            )
            raise PluginError(str(problem)) from error


@dataclass(frozen=True)
class PluginInfo:
    """One line of ``custan plugins``."""

    name: str
    distribution: str | None
    version: str | None
    hooks: list[str]
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "hooks": self.hooks,
            "error": self.error,
        }


def list_plugins(include_builtin: bool = False) -> list[PluginInfo]:
    """Describe the registered plugins and those that failed to import, by name."""
    manager = get_plugin_manager()
    found: list[PluginInfo] = []
    for name, plugin in manager.list_name_plugin():
        if name == BUILTIN_PLUGIN and not include_builtin:
            continue
        hooks = sorted(caller.name for caller in manager.get_hookcallers(plugin) or [])
        found.append(_info(name, hooks))
    for problem in import_failures():
        found.append(_info(problem.plugin, [], problem.message))
    return sorted(found, key=lambda info: info.name)


def _info(name: str, hooks: list[str], error: str | None = None) -> PluginInfo:
    distribution = _distribution_of(name)
    if distribution is None:
        return PluginInfo(name, None, None, hooks, error)
    return PluginInfo(name, distribution.name, distribution.version, hooks, error)


def _distribution_of(plugin: str) -> Distribution | None:
    """Return where a plugin was installed from; None for one registered in code."""
    if plugin == BUILTIN_PLUGIN:
        return Distribution("custan", importlib.metadata.version("custan"))
    return _discovery.distributions.get(plugin)


def missing_requirements(requires: list[str]) -> list[str]:
    """Return the distributions of ``requires`` that are not installed."""
    missing = []
    for name in requires:
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    return missing


def broken_requirements(requires: list[str]) -> list[PluginProblem]:
    """Return the import failures of plugins that come from a required distribution."""
    required = {_normalize(name) for name in requires}
    return [
        problem
        for problem in import_failures()
        if _required_by(problem.plugin, required)
    ]


def _required_by(plugin: str, required: set[str]) -> bool:
    distribution = _distribution_of(plugin)
    return distribution is not None and _normalize(distribution.name) in required


def _normalize(name: str) -> str:
    # Distribution names compare case-insensitively with -, _ and . alike.
    return name.lower().replace("_", "-").replace(".", "-")
