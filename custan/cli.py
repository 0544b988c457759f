"""The custan command line: a thin layer over the library.

It maps every CustanError to one line on standard error and its exit code:
0 success, 1 a data or run-time problem, 2 a rules-file or usage problem,
130 when interrupted. Tracebacks appear only with --debug.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from rich.table import Table

from custan import __version__, plugins
from custan.api import compile_with_plugins, compiled_sql, run
from custan.compiler.params import parse_override
from custan.errors import CustanError, UsageError
from custan.model import load_rules, rules_schema
from custan.sinks.atomic import open_output
from custan.sinks.table import PipeConsole

logger = logging.getLogger("custan")

# DuckDB's LIMIT takes a signed 64-bit integer.
MAX_LIMIT = 2**63 - 1


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="custan",
        description="Customer analytics on payment transactions, described in YAML.",
    )
    parser.add_argument("--version", action="version", version=f"custan {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks and the SQL"
    )
    parser.add_argument(
        "--no-plugins",
        action="store_true",
        help="do not load installed plugins; built-ins still load "
        f"(same as {plugins.DISABLE_VARIABLE}=1)",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser
    )

    run_parser = commands.add_parser("run", help="run a rules file and write its rows")
    run_parser.add_argument("rules", help="the rules file (YAML)")
    _add_data_options(run_parser)
    run_parser.add_argument(
        "--format",
        choices=sorted(plugins.sinks().entries),
        default=None,
        help="output format (default: table on a terminal or "
        "without --output, else from the --output suffix)",
    )
    run_parser.add_argument(
        "-o",
        "--output",
        help="write to this file instead of standard output; a regular file "
        "is replaced atomically, a device or FIFO is written in place, and a "
        "plugin's sink may take another destination, such as a URL",
    )
    run_parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress or notes on standard error",
    )

    validate_parser = commands.add_parser(
        "validate", help="check rules files without reading data"
    )
    validate_parser.add_argument("rules", nargs="+", help="rules files")

    commands.add_parser("schema", help="print the JSON Schema of rules files")

    plugins_parser = commands.add_parser(
        "plugins", help="list installed plugins, their versions and hooks"
    )
    plugins_parser.add_argument(
        "--format",
        choices=["table", "json"],
        default="table",
        help="output format (default: table)",
    )
    plugins_parser.add_argument(
        "--all", action="store_true", help="include custan's built-in plugin"
    )

    sql_parser = commands.add_parser("sql", help="print the compiled query")
    sql_parser.add_argument("rules", help="the rules file (YAML)")
    _add_data_options(sql_parser)
    sql_parser.add_argument(
        "--dialect",
        default="duckdb",
        help="SQL dialect to print, such as duckdb, postgres, spark",
    )
    return parser


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        metavar="KIND",
        help="read transactions from a source of KIND in place of the file's, "
        "such as payload (configured by PAYLOAD_API_KEY, PAYLOAD_API_URL and "
        "PAYLOAD_API_VERSION)",
    )
    parser.add_argument(
        "--accounts",
        metavar="PATH",
        help="read accounts (id, created_at) from PATH, keeping the rules "
        "file's accounts format and column mapping",
    )
    parser.add_argument(
        "--data",
        metavar="PATH",
        help="read transactions from PATH (file, glob or folder), keeping "
        "the rules file's format and column mapping",
    )
    parser.add_argument(
        "--as-of",
        metavar="INSTANT",
        help="evaluation instant: latest, now, or ISO 8601 (UTC without an offset)",
    )
    parser.add_argument(
        "--limit",
        type=_positive,
        metavar="N",
        help="write at most N rows, replacing the file's limit",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="replace the value of a param the rules file declares, such as "
        "time_unit=weeks; repeat for more",
    )


def _params(args: argparse.Namespace) -> dict[str, Any]:
    return dict(parse_override(text) for text in args.param)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("the limit must be 1 or more")
    if value > MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"the limit must be at most {MAX_LIMIT}")
    return value


def _sink_name(args: argparse.Namespace, sinks: dict[str, type]) -> str:
    if args.format:
        return args.format
    if args.output == "":
        raise UsageError(
            "--output is empty; give a file name, or - for standard output"
        )
    if args.output:
        suffix = args.output.rsplit(".", 1)[-1].lower()
        if suffix in sinks and suffix != "table":
            return suffix
        raise UsageError(f"cannot tell the format of {args.output!r}; pass --format")
    return "table"


def command_run(args: argparse.Namespace) -> int:
    sinks = plugins.sinks().entries
    sink_class = sinks[_sink_name(args, sinks)]
    writes_files = getattr(sink_class, "writes_files", True)
    sink = sink_class() if writes_files else sink_class(destination=args.output)
    result = run(
        args.rules,
        data=args.data,
        as_of=args.as_of,
        limit=args.limit,
        accounts=args.accounts,
        params=_params(args),
        source_kind=args.source,
        progress=not args.quiet,
    )
    try:
        if writes_files:
            with open_output(args.output) as stream:
                sink.write(result, stream)
        else:
            sink.write(result, sys.stdout)
    finally:
        result.close()
    if args.output and writes_files and not args.quiet:
        print(f"wrote {result.row_count} rows to {args.output}", file=sys.stderr)
    return 0


def command_validate(args: argparse.Namespace) -> int:
    failures = 0
    for path in args.rules:
        try:
            compile_with_plugins(load_rules(path))
        except CustanError as error:
            failures += 1
            print(f"error: {error}", file=sys.stderr)
        else:
            print(f"{path}: ok")
    return 2 if failures else 0


def command_schema(args: argparse.Namespace) -> int:
    print(json.dumps(rules_schema(), indent=2))
    return 0


def command_sql(args: argparse.Namespace) -> int:
    rules = load_rules(args.rules)
    print(
        compiled_sql(
            rules,
            data=args.data,
            accounts=args.accounts,
            as_of=args.as_of,
            limit=args.limit,
            dialect=args.dialect,
            params=_params(args),
            source_kind=args.source,
        )
    )
    return 0


def command_plugins(args: argparse.Namespace) -> int:
    found = plugins.list_plugins(include_builtin=args.all)
    if args.format == "json":
        print(json.dumps([info.as_json() for info in found], indent=2))
        return 0
    table = Table(title="custan plugins")
    for heading in ("name", "distribution", "version", "hooks"):
        table.add_column(heading)
    for info in found:
        hooks = ", ".join(info.hooks) if info.error is None else f"failed: {info.error}"
        table.add_row(info.name, info.distribution or "", info.version or "", hooks)
    PipeConsole(highlight=False).print(table)
    return 0


COMMANDS = {
    "run": command_run,
    "validate": command_validate,
    "schema": command_schema,
    "sql": command_sql,
    "plugins": command_plugins,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    arguments = list(argv if argv is not None else sys.argv[1:])
    debug = "--debug" in arguments
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(name)s: %(message)s",
    )
    # Plugins' sinks become --format choices, so discovery is settled before parsing.
    plugins.use_entry_points("--no-plugins" not in arguments)
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except CustanError as error:
        if debug and not isinstance(error, UsageError):
            logger.exception("failed")
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 0


def _silence_stdout() -> None:
    """Point standard output at /dev/null after its reader has gone.

    Python flushes standard output at exit, which would raise again on the
    closed pipe and print an ignored-exception message.
    """
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, descriptor)
    os.close(null)
