"""Shell completion: `kubectl_complete-emqx` for `kubectl emqx <TAB>` (kubectl >= 1.26), and the
cluster-name completer the NAME arguments use.

kubectl runs `kubectl_complete-emqx <words typed after "emqx">`, the last word being the one under
the cursor (possibly empty), and expects one candidate per line (cobra style: `value<TAB>help`),
then a `:<directive>` line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import click
from click.shell_completion import CompletionItem, ShellComplete

if TYPE_CHECKING:
    from kubectl_emqx.kube.api import ClusterApi
    from kubectl_emqx.kube.kubeconfig import KubeFlags

# cobra's ShellCompDirective values
DIRECTIVE_DEFAULT = 0  # let the shell complete file names
DIRECTIVE_NO_FILE_COMP = 4

COMPLETION_TIMEOUT_SECONDS = 5.0
COMPLETE_VAR = "_KUBECTL_EMQX_COMPLETE"


def complete_cluster_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """EMQX cluster names in the namespace chosen so far; nothing (never an error) when the API
    cannot be asked."""
    from kubectl_emqx.cli.options import state

    app = state(ctx)
    app.flags.setdefault("request_timeout", COMPLETION_TIMEOUT_SECONDS)
    try:
        api = app.reader()
        items = api.list_emqx(api.namespace)
    except Exception:
        return []
    names = sorted(str((item.get("metadata") or {}).get("name", "")) for item in items)
    return [CompletionItem(name) for name in names if name.startswith(incomplete)]


def completion_lines(words: Sequence[str], connect: Callable[[KubeFlags], ClusterApi] | None = None) -> list[str]:
    """The lines kubectl_complete-emqx prints for the words typed after `kubectl emqx`."""
    from kubectl_emqx.cli.main import cli
    from kubectl_emqx.cli.options import AppState

    args = list(words[:-1])
    incomplete = words[-1] if words else ""
    completer = ShellComplete(cli, {"obj": AppState(connect=connect)}, "kubectl emqx", COMPLETE_VAR)
    try:
        items = completer.get_completions(args, incomplete)
    except Exception:
        return [f":{DIRECTIVE_NO_FILE_COMP}"]
    if any(item.type in ("file", "dir") for item in items):
        return [f":{DIRECTIVE_DEFAULT}"]
    lines = [f"{item.value}\t{item.help}" if item.help else str(item.value) for item in items]
    return [*lines, f":{DIRECTIVE_NO_FILE_COMP}"]


def main() -> None:
    for line in completion_lines(sys.argv[1:]):
        print(line)
