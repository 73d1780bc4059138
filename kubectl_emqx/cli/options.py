"""Click plumbing shared by every verb: kubectl's global flags, output flags, durations, and the
per-invocation state that carries them to the Kubernetes facade.

kubectl passes its global flags through to plugins untouched and they may appear anywhere
(`kubectl emqx status x -n prod`), so every command accepts them; they all land in one AppState.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from kubectl_emqx.kube.api import ClusterApi, ClusterReader
    from kubectl_emqx.kube.kubeconfig import Endpoint, KubeFlags

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_WAIT_TIMEOUT = "10m"


@dataclass
class AppState:
    """What one invocation shares: global flag values, verbosity, and the (lazy) API session."""

    flags: dict[str, Any] = field(default_factory=dict)
    verbosity: int = 0
    connect: Callable[[KubeFlags], ClusterApi] | None = None  # tests inject an in-memory API
    _endpoint: Endpoint | None = None
    _api: ClusterApi | None = None
    _reader: ClusterReader | None = None

    def kube_flags(self) -> KubeFlags:
        from kubectl_emqx.kube.kubeconfig import KubeFlags

        return KubeFlags(**self.flags)

    def endpoint(self) -> Endpoint:
        """The kubeconfig and the flags, resolved once (kubeconfig.resolve) for either session."""
        if self._endpoint is None:
            from kubectl_emqx.kube import kubeconfig

            self._endpoint = kubeconfig.resolve(self.kube_flags())
        return self._endpoint

    def api(self) -> ClusterApi:
        if self._api is None:
            if self.connect is not None:
                self._api = self.connect(self.kube_flags())
            else:
                from kubectl_emqx.kube import client

                self._api = client.connect(self.kube_flags(), self.endpoint())
        return self._api

    def reader(self) -> ClusterReader:
        """For verbs that only read the EMQX resource and its Events: the light session (rest.py, no
        `kubernetes` import) unless the endpoint needs the client (Endpoint.needs_client)."""
        if self._api is not None or self.connect is not None:
            return self.api()
        if self._reader is None:
            from kubectl_emqx.kube import rest

            self._reader = rest.connect(self.kube_flags(), self.endpoint()) or self.api()
        return self._reader

    @property
    def explicit_namespace(self) -> str | None:
        return self.flags.get("namespace")


def state(ctx: click.Context | None = None) -> AppState:
    return (ctx or click.get_current_context()).ensure_object(AppState)


# --- durations --------------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Go-style durations as kubectl takes them: 30s, 5m, 1h30m, 500ms; a bare number is seconds."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    if not text or _DURATION_PART.sub("", text):
        raise ValueError(f"{text!r} is not a duration (examples: 30s, 5m, 1h30m)")
    return sum(float(amount) * _UNIT_SECONDS[unit] for amount, unit in _DURATION_PART.findall(text))


class Duration(click.ParamType):
    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float):
            return float(value)
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


# --- kubectl's global flags -------------------------------------------------------------------


class GlobalOption(click.Option):
    """A kubectl global flag; help lists these in their own section."""


def _store_flag(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value is None or value == () or value is False:
        return value
    assert param.name is not None
    target = state(ctx)
    if param.name == "verbose":
        target.verbosity += int(value)
    else:
        target.flags[param.name] = tuple(value) if isinstance(value, list | tuple) else value
    return value


def _global(*decls: str, **kwargs: Any) -> Callable[[F], F]:
    return click.option(*decls, cls=GlobalOption, expose_value=False, callback=_store_flag, **kwargs)


_GLOBAL_FLAGS: list[Callable[[F], F]] = [
    _global("-n", "--namespace", metavar="NS", help="Namespace (default: the context's namespace)."),
    _global("--context", metavar="NAME", help="Kubeconfig context to use."),
    _global("--kubeconfig", metavar="FILE", type=click.Path(dir_okay=False), help="Kubeconfig file."),
    _global("--cluster", metavar="NAME", help="Kubeconfig cluster to use."),
    _global("--user", metavar="NAME", help="Kubeconfig user to use."),
    _global("--as", "as_user", metavar="USER", help="Impersonate this user."),
    _global("--as-group", "as_groups", metavar="GROUP", multiple=True, help="Impersonate this group (repeatable)."),
    _global(
        "--request-timeout",
        metavar="DURATION",
        type=Duration(),
        help="Timeout for each API request (default 30s; 0 = none).",
    ),
    _global("-s", "--server", metavar="URL", help="API server address."),
    _global("--token", metavar="TOKEN", help="Bearer token."),
    _global("--certificate-authority", metavar="FILE", help="CA certificate file."),
    _global("--insecure-skip-tls-verify", is_flag=True, default=None, help="Do not verify the server certificate."),
    _global("--tls-server-name", metavar="NAME", help="Server name to verify the server certificate against."),
    _global("-v", "--verbose", count=True, help="Show tracebacks on errors."),
]


def kube_options(func: F) -> F:
    for option in reversed(_GLOBAL_FLAGS):
        func = option(func)
    return func


class EmqxCommand(click.Command):
    """Lists kubectl's global flags after the command's own options."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        format_split_options(self, ctx, formatter)


class EmqxGroup(click.Group):
    command_class = EmqxCommand

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        format_split_options(self, ctx, formatter)
        self.format_commands(ctx, formatter)


EmqxGroup.group_class = EmqxGroup


def format_split_options(command: click.Command, ctx: click.Context, formatter: click.HelpFormatter) -> None:
    """The command's own options, then kubectl's global flags: described in full on the root
    command's help, named in one paragraph on each verb's."""
    own: list[tuple[click.Parameter, tuple[str, str]]] = []
    shared: list[tuple[click.Parameter, tuple[str, str]]] = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx) if isinstance(param, click.Option) else None
        if record:
            (shared if isinstance(param, GlobalOption) else own).append((param, record))
    if own:
        with formatter.section("Options"):
            formatter.write_dl([record for _, record in own])
    if not shared:
        return
    with formatter.section("Global flags (as kubectl)"):
        if ctx.parent is None:
            formatter.write_dl([record for _, record in shared])
        else:
            names = ", ".join("/".join(param.opts) for param, _ in shared)
            formatter.write_text(f"{names} (see `{ctx.find_root().info_name} --help`)")


# --- flags shared by groups of verbs ----------------------------------------------------------


def output_options(func: F) -> F:
    """-o/--no-headers/--color for read verbs."""
    func = click.option(
        "--color",
        type=click.Choice(["auto", "always", "never"]),
        default="auto",
        show_default=True,
        help="Colour the text output.",
    )(func)
    func = click.option("--no-headers", is_flag=True, help="Omit table headers and section titles.")(func)
    func = click.option(
        "-o", "--output", type=click.Choice(["json", "yaml"]), default=None, help="Print JSON or YAML instead of text."
    )(func)
    return func


def wait_options(func: F) -> F:
    """--wait/--timeout for mutating verbs."""
    func = click.option(
        "--timeout",
        type=Duration(),
        default=None,
        help="How long --wait waits (for each hop of a multi-step upgrade). Default: 30m, and never "
        "less than the operator's own nodeReadyTimeoutSeconds for the node in flight, so its verdict "
        "is reported rather than a timeout.",
    )(func)
    func = click.option("--wait", is_flag=True, help="Follow the change until the cluster is Ready.")(func)
    return func


def yes_option(func: F) -> F:
    return click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")(func)


def name_argument(func: F) -> F:
    from kubectl_emqx.cli.completion import complete_cluster_names

    return click.argument("name", shell_complete=complete_cluster_names)(func)

