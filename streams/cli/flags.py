"""What every command group shares: the parser class and the setting flags, each defined once.

A setting flag (`--broker`, `--redis-url`, `--metrics-port`, ...) reads into the setting of the
same name; `settings_from(args)` turns the flags a command was given into `Settings`, over the
`EMC_*` environment variables and the defaults (`streams/settings.py`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable

from streams.domain.registry import Registry
from streams.errors import ConfigError
from streams.settings import ENV_VARS, LOG_LEVELS, Settings, load_settings

# setting name -> (flag, help without the environment variable)
SETTING_FLAGS: dict[str, tuple[str, str]] = {
    "broker": ("--broker", "Kafka bootstrap, kafka://HOST:PORT"),
    "redis_url": ("--redis-url", "redis://HOST:PORT/DB"),
    "redis_prefix": ("--redis-prefix", "key prefix, default emc:v1:"),
    "metrics_port": ("--metrics-port", "port of /metrics"),
    "data_dir": ("--data-dir", "directory of the table store"),
    "partitions": ("--partitions", "state partitions (= batch topic partitions)"),
    "input_topic": ("--input-topic", "input topic"),
    "log_level": ("--log-level", f"one of {'|'.join(LOG_LEVELS)}"),
    "worker_name": ("--worker-name", "name shown in emc_worker_info"),
    "bulletin_topic": ("--bulletin-topic", "the published bulletins' topic, default emc.bulletins.v1"),
    "app_id": ("--app-id", "the workers' app id: names the consumer groups and the changelog topics"),
    "auth": ("--auth", "event signatures: off|audit|enforce"),
    "keyring": ("--keyring", "keyring file of agency keys (JSON or TOML): the worker verifies, publish/simulate sign"),
}


class CliParser(argparse.ArgumentParser):
    """A parser whose usage errors raise ConfigError: one readable line, exit 2."""

    def error(self, message: str) -> None:
        raise ConfigError(message)


def add_settings(parser: argparse.ArgumentParser, names: Iterable[str]) -> None:
    """Add the flags of these settings (strings, checked by `load_settings`)."""
    for name in names:
        flag, help_text = SETTING_FLAGS[name]
        parser.add_argument(flag, dest=name, default=None, help=f"{help_text} (env {ENV_VARS[name]})")


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the setting flags the command has (absent or not given: env, then default)."""
    return load_settings({name: getattr(args, name, None) for name in SETTING_FLAGS})


def with_settings_and_registry(
    command: Callable[[argparse.Namespace, Settings, Registry], int],
) -> Callable[[argparse.Namespace], int]:
    """A command's `run`: the command called with the settings of its flags and the registry."""
    return lambda args: command(args, settings_from(args), Registry.load())


def subcommands(parser: argparse.ArgumentParser, dest: str) -> argparse._SubParsersAction:
    """The (required) subcommands of a command group, with the same parser class."""
    return parser.add_subparsers(dest=dest, required=True, parser_class=CliParser)
