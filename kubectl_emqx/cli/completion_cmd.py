"""`kubectl emqx completion bash|zsh|fish`: the script for calling `kubectl-emqx` directly.

Under kubectl (>= 1.26) completion needs no script: kubectl runs `kubectl_complete-emqx`, which
ships with the plugin.
"""

from __future__ import annotations

import click

from kubectl_emqx.cli.common import emit
from kubectl_emqx.cli.completion import COMPLETE_VAR
from kubectl_emqx.cli.options import EmqxCommand


@click.command("completion", cls=EmqxCommand)
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print a completion script for the `kubectl-emqx` executable.

    `kubectl emqx <TAB>` completes through `kubectl_complete-emqx` (on PATH next to kubectl-emqx)
    and needs none of this. For the standalone executable, e.g.:

        source <(kubectl-emqx completion bash)
    """
    from click.shell_completion import get_completion_class

    from kubectl_emqx.cli.main import cli

    shell_class = get_completion_class(shell)
    assert shell_class is not None
    emit(shell_class(cli, {}, "kubectl-emqx", COMPLETE_VAR).source())
