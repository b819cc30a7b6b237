"""The `emc` command line: the parser is built from the command groups, each a module of
`streams/cli/` with `register(subparsers)` that sets `run` on its (sub)commands.

Adding a command group: a new module with `register`, and one line in `COMMAND_GROUPS`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from streams.cli import (
    agency,
    bulletin,
    catalogue,
    explain,
    keys,
    local,
    publish,
    reconcile,
    registry,
    report,
    simulate,
    targets,
    worker,
)
from streams.cli.flags import CliParser
from streams.errors import ConfigError, EmcError

COMMAND_GROUPS = (worker, publish, simulate, local, registry, targets, agency, report, explain, reconcile, bulletin, keys, catalogue)


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(prog="emc", description="EMC Streams: exact full-online counts per agency")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=CliParser)
    for group in COMMAND_GROUPS:
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except ConfigError as exc:
        print(f"emc: error: {exc}", file=sys.stderr)
        return 2
    except EmcError as exc:
        print(f"emc: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`emc report | head`). Point stdout at
        # /dev/null so the interpreter's final flush cannot raise again, and exit
        # like a process killed by SIGPIPE, as shell tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + 13


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
