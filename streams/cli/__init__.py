"""The `emc` command line: one module per command group, each adding its own subcommands.

The outermost layer: it may import everything, and nothing imports it.
"""

from streams.cli.main import main

__all__ = ["main"]
