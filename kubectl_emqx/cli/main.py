"""`kubectl emqx`: the root command, a lazy click group.

Verb names and their one-line help are static here; a verb's module is imported only when that
verb runs (or prints its help), so `kubectl emqx --help` loads click and nothing heavy.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import click
from click.shell_completion import CompletionItem

from kubectl_emqx.cli.completion import COMPLETE_VAR
from kubectl_emqx.cli.options import EmqxGroup, kube_options, state
from kubectl_emqx.kube import errors

PROG_NAME = "kubectl emqx"


@dataclass(frozen=True)
class Verb:
    module: str
    attribute: str
    short_help: str
    section: str


CLUSTER = "Cluster commands"
OPERATOR = "Operator commands"
OTHER = "Other commands"

VERBS: dict[str, Verb] = {
    "create": Verb("create", "create", "Create an EMQX cluster", CLUSTER),
    "list": Verb("list_", "list_clusters", "List EMQX clusters", CLUSTER),
    "status": Verb("status", "status", "Show a cluster's status, nodes and events", CLUSTER),
    "dashboard": Verb("dashboard", "dashboard", "Forward a local port to a cluster's dashboard", CLUSTER),
    "logs": Verb("logs", "logs", "Print or follow every node's log, merged", CLUSTER),
    "report": Verb("report", "report", "Write a support archive (no secret values)", CLUSTER),
    "scale": Verb("scale", "scale", "Change the number of core or replicant nodes", CLUSTER),
    "config": Verb("config", "config", "Show or change a cluster's EMQX configuration", CLUSTER),
    "upgrade": Verb("upgrade", "upgrade", "Change a cluster's EMQX image (or roll back)", CLUSTER),
    "restart": Verb("restart", "restart", "Restart a cluster's nodes one at a time", CLUSTER),
    "rebalance": Verb("rebalance", "rebalance", "Rebalance client connections across nodes", CLUSTER),
    "backup": Verb("backup", "backup", "Export a cluster's configuration and built-in data", CLUSTER),
    "restore": Verb("backup", "restore", "Import a backup into a cluster", CLUSTER),
    "delete": Verb("delete", "delete", "Delete an EMQX cluster", CLUSTER),
    "install": Verb("operator", "install", "Install the EMQX operator and CRD", OPERATOR),
    "uninstall": Verb("operator", "uninstall", "Remove the EMQX operator", OPERATOR),
    "version": Verb("version", "version", "Show plugin and operator versions", OPERATOR),
    "completion": Verb("completion_cmd", "completion", "Print a shell completion script", OTHER),
}


class LazyGroup(EmqxGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(VERBS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        verb = VERBS.get(cmd_name)
        if verb is None:
            return None
        module = importlib.import_module(f"kubectl_emqx.cli.{verb.module}")
        command: click.Command = getattr(module, verb.attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Static help texts: formatting must not import every verb module.
        sections: dict[str, list[tuple[str, str]]] = {}
        for name, verb in VERBS.items():
            sections.setdefault(verb.section, []).append((name, verb.short_help))
        for title, rows in sections.items():
            with formatter.section(title):
                formatter.write_dl(rows)

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        if incomplete.startswith("-"):
            return super().shell_complete(ctx, incomplete)
        # Verb names from the static table: completing them must not import every verb module.
        return [
            CompletionItem(name, help=verb.short_help) for name, verb in VERBS.items() if name.startswith(incomplete)
        ]

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and name not in VERBS and not name.startswith("-"):
            import difflib

            close = difflib.get_close_matches(name, list(VERBS), n=2)
            hint = f" Did you mean {' or '.join(close)}?" if close else ""
            ctx.fail(f"unknown command {name!r}.{hint} See `{PROG_NAME} --help`.")
        return super().resolve_command(ctx, args)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """As click's, except that a usage error (a bad flag value, a missing argument, an unknown
        verb) is one line on stderr -- `error: <what is wrong> (see `kubectl emqx VERB --help`)` --
        instead of click's usage block; still exit code 2."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, False, **extra)
        except click.exceptions.UsageError as exc:
            click.echo(f"error: {usage_error_line(exc)}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        # Without standalone mode click returns the exit code of ctx.exit(code), or the verb's
        # return value (None).
        sys.exit(result if isinstance(result, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except errors.PluginError as exc:
            _report(ctx, exc, exc.message)
            ctx.exit(exc.exit_code)
        except Exception as exc:
            _report(ctx, exc, f"unexpected failure: {type(exc).__name__}: {exc}")
            ctx.exit(1)


def usage_error_line(exc: click.exceptions.UsageError) -> str:
    message = exc.format_message().strip().replace("\n", " ")
    if exc.ctx is None or "--help" in message:
        return message
    return f"{message} (see `{exc.ctx.command_path} --help`)"


def _report(ctx: click.Context, exc: BaseException, message: str) -> None:
    if state(ctx).verbosity:
        import traceback

        click.echo("".join(traceback.format_exception(exc)), err=True, nl=False)
    lines = message.splitlines() or [""]
    click.echo(f"error: {lines[0]}", err=True)
    for line in lines[1:]:
        click.echo(f"  {line}", err=True)
    if not state(ctx).verbosity and not isinstance(exc, errors.PluginError):
        click.echo("  (run with -v for the traceback)", err=True)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
@kube_options
def cli() -> None:
    """Create, inspect and change EMQX 5 clusters run by the EMQX operator.

    The plugin only writes the EMQX resource (apps.emqx.io/v2beta1) and reads its status; the
    operator does the rest.
    """


def main() -> None:
    cli.main(prog_name=PROG_NAME, complete_var=COMPLETE_VAR)

