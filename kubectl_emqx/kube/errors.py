"""Errors the plugin reports to the user: one actionable line each, plus the exit code.

kube.py translates every Kubernetes client failure into one of these, so no other module has to
know the client's exception types. The CLI prints `error: <message>` and exits with `exit_code`.
"""

from __future__ import annotations

from collections.abc import Sequence


class PluginError(Exception):
    exit_code = 1

    @property
    def message(self) -> str:
        return str(self)


class KubeconfigError(PluginError):
    """The kubeconfig (or the flags selecting part of it) cannot be used."""


class ClusterUnreachable(PluginError):
    """The API server did not answer (connection refused, DNS, TLS, timeout)."""


class Unauthorized(PluginError):
    """401: the credentials were rejected."""


class OperatorNotInstalled(PluginError):
    def __init__(self) -> None:
        super().__init__("the EMQX operator is not installed: run `kubectl emqx install`")


class Forbidden(PluginError):
    def __init__(self, verb: str, resource: str, namespace: str | None, detail: str = "") -> None:
        where = f" in namespace {namespace}" if namespace else " cluster-wide"
        text = f"forbidden: you may not {verb} {resource}{where}"
        if detail:
            text += f" ({detail})"
        super().__init__(text + "; ask your cluster admin for RBAC access")
        self.verb = verb
        self.resource = resource
        self.namespace = namespace


class NotFound(PluginError):
    def __init__(self, name: str, namespace: str, suggestions: Sequence[str] = ()) -> None:
        text = f'EMQX cluster "{name}" not found in namespace {namespace}'
        if suggestions:
            text += "; did you mean " + " or ".join(suggestions) + "?"
        super().__init__(text)
        self.name = name
        self.namespace = namespace
        self.suggestions = list(suggestions)


class AlreadyExists(PluginError):
    def __init__(self, name: str, namespace: str) -> None:
        super().__init__(
            f'EMQX cluster "{name}" already exists in namespace {namespace}; '
            "change it with `kubectl emqx scale|config|upgrade`, or pick another name"
        )


class Conflict(PluginError):
    """409 that retrying did not resolve: someone else keeps changing the object."""


class Invalid(PluginError):
    """422 from the API server (schema or CEL validation)."""


class ApiServerError(PluginError):
    """5xx, 429 and any other status the plugin has no specific advice for."""


class WatchExpired(PluginError):
    """410 Gone: the resourceVersion a watch started from is too old; re-read and watch again."""


class SpecInvalid(PluginError):
    """Domain validation (validation.validate) refused the resource; nothing was written."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class NotConfirmed(PluginError):
    def __init__(self) -> None:
        super().__init__("not confirmed; nothing was changed (pass --yes to skip the question)")


class WaitFailed(PluginError):
    """The operator reported that the change cannot succeed (Failed phase, Valid=False, stalled)."""

    exit_code = 3


class WaitTimedOut(PluginError):
    exit_code = 4


class WaitInterrupted(PluginError):
    exit_code = 130


class NotYetAvailable(PluginError):
    pass
