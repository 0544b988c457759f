"""The custan command line: a thin layer over the library.

It maps every CustanError to one line on standard error and its exit code:
0 success, 1 a data or run-time problem, 2 a rules-file or usage problem,
130 when interrupted. Tracebacks appear only with --debug.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from custan import __version__
from custan.api import compiled_sql, run
from custan.errors import CustanError, UsageError
from custan.model import load_rules, rules_schema
from custan.sinks.atomic import open_output
from custan.sinks.table import TableSink
from custan.sinks.text_formats import CsvSink, JsonLinesSink, JsonSink

logger = logging.getLogger("custan")

SINKS = {"table": TableSink, "csv": CsvSink, "json": JsonSink, "jsonl": JsonLinesSink}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="custan",
        description="Customer analytics on payment transactions, described in YAML.",
    )
    parser.add_argument("--version", action="version", version=f"custan {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and the SQL")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run_parser = commands.add_parser("run", help="run a rules file and write its rows")
    run_parser.add_argument("rules", help="the rules file (YAML)")
    _add_data_options(run_parser)
    run_parser.add_argument("--format", choices=sorted(SINKS), default=None,
                            help="output format (default: table on a terminal or "
                                 "without --output, else from the --output suffix)")
    run_parser.add_argument("-o", "--output", help="write to this file instead of "
                            "standard output; written atomically")
    run_parser.add_argument("-q", "--quiet", action="store_true",
                            help="no progress or notes on standard error")

    validate_parser = commands.add_parser(
        "validate", help="check rules files without reading data")
    validate_parser.add_argument("rules", nargs="+", help="rules files")

    commands.add_parser("schema", help="print the JSON Schema of rules files")

    sql_parser = commands.add_parser("sql", help="print the compiled query")
    sql_parser.add_argument("rules", help="the rules file (YAML)")
    _add_data_options(sql_parser)
    sql_parser.add_argument("--dialect", default="duckdb",
                            help="SQL dialect to print, such as duckdb, postgres, spark")
    return parser


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", metavar="PATH",
                        help="read transactions from PATH (file, glob or folder), keeping "
                             "the rules file's format and column mapping")
    parser.add_argument("--as-of", metavar="INSTANT",
                        help="evaluation instant: latest, now, or ISO 8601 (UTC without "
                             "an offset)")
    parser.add_argument("--limit", type=_positive, metavar="N",
                        help="write at most N rows, replacing the file's limit")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("the limit must be 1 or more")
    return value


def _sink_name(args: argparse.Namespace) -> str:
    if args.format:
        return args.format
    if args.output:
        suffix = args.output.rsplit(".", 1)[-1].lower()
        if suffix in SINKS and suffix != "table":
            return suffix
        raise UsageError(f"cannot tell the format of {args.output!r}; pass --format")
    return "table"


def command_run(args: argparse.Namespace) -> int:
    sink = SINKS[_sink_name(args)]()
    result = run(args.rules, data=args.data, as_of=args.as_of, limit=args.limit)
    try:
        with open_output(args.output) as stream:
            sink.write(result, stream)
    finally:
        result.close()
    if args.output and not args.quiet:
        print(f"wrote {result.row_count} rows to {args.output}", file=sys.stderr)
    return 0


def command_validate(args: argparse.Namespace) -> int:
    from custan.compiler.plan import compile_rules

    failures = 0
    for path in args.rules:
        try:
            compile_rules(load_rules(path))
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
    print(compiled_sql(rules, data=args.data, as_of=args.as_of, limit=args.limit,
                       dialect=args.dialect))
    return 0


COMMANDS = {
    "run": command_run,
    "validate": command_validate,
    "schema": command_schema,
    "sql": command_sql,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(name)s: %(message)s")
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except CustanError as error:
        if debug:
            logger.exception("failed")
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
