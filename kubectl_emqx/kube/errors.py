"""Errors the plugin reports to the user: one actionable line each, plus the exit code; and the one
translator both Kubernetes transports (client.py, rest.py) use to turn an API answer or a transport
failure into one of them (`from_response`, `from_status`, `unreachable`), so that the CLI says the
same thing whichever transport served it. The CLI prints `error: <message>` and exits with
`exit_code`. (The translator imports what it needs when it runs: every verb imports this module,
`--help` included.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


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


# --- translation (both transports) ------------------------------------------------------------


def from_response(
    code: int, reason: str | None, body: bytes | str | None, verb: str, namespace: str | None, name: str = "",
    resource: str | None = None,
) -> PluginError:
    """An HTTP error answer: its Kubernetes Status body when it has one, else the status line.
    `resource` defaults to the EMQX resource (vocabulary.RESOURCE)."""
    import json

    status: Any
    try:
        status = json.loads(body) if body else {}
    except (TypeError, ValueError):
        status = {}
    if not isinstance(status, dict):
        status = {}
    status.setdefault("code", code)
    status.setdefault("message", reason or "")
    return from_status(status, verb, namespace, name, resource)


def from_status(
    status: dict[str, Any], verb: str, namespace: str | None, name: str = "", resource: str | None = None
) -> PluginError:
    """A Kubernetes Status (an error answer's body, or a watch's ERROR event) as a PluginError."""
    from kubectl_emqx.domain.vocabulary import RESOURCE

    resource = resource or RESOURCE
    code = status.get("code")
    reason = status.get("reason", "")
    message = status.get("message", "") or reason or f"HTTP {code}"
    details = status.get("details") or {}
    if code == 401:
        return Unauthorized(
            "unauthorized: the API server rejected your credentials; log in again or check --user/--token"
        )
    if code == 403:
        return Forbidden(verb, resource, namespace, _forbidden_subject(message))
    if code == 404 and resource == RESOURCE:
        # The resource's own NotFound names it in details; anything else means the API group
        # (the CRD) is not served at all.
        if name and details.get("name") == name:
            return NotFound(name, namespace or "")
        return OperatorNotInstalled()
    if code == 409 and reason == "AlreadyExists":
        return AlreadyExists(name, namespace or "")
    if code == 409:
        return Conflict(f"conflict: {message}")
    if code == 410:
        return WatchExpired(message)
    if code == 422:
        causes = [
            f"{cause.get('field', '')}: {cause.get('message', '')}".strip(": ")
            for cause in details.get("causes") or []
        ]
        return Invalid("the API server refused the EMQX resource: " + ("; ".join(causes) or message))
    return ApiServerError(f"the API server failed to {verb} {resource}: {message} (HTTP {code})")


def unreachable(
    server: str, context: str, cause: object, *, timed_out_after: float | None = None
) -> ClusterUnreachable:
    """A transport failure: `timed_out_after` (seconds) when a request got no answer in time, else
    the connection failed (refused, DNS, TLS, reset)."""
    if timed_out_after is not None:
        return ClusterUnreachable(
            f"the Kubernetes API at {server} did not answer within {timed_out_after:g}s "
            "(raise --request-timeout, or check the cluster)"
        )
    return ClusterUnreachable(
        f"cannot reach the Kubernetes API at {server} (context {context}): {short_reason(cause)}; "
        "check --context/--kubeconfig and your network"
    )


def short_reason(reason: object) -> str:
    """The cause of a connection failure without its wrapping, the same whichever transport met it:
    urllib3's "HTTPSConnection(host=..., port=1): Failed to establish a new connection: [Errno 111]
    Connection refused" and the standard library's ConnectionRefusedError both become "Connection
    refused"; a certificate check that failed (inside urllib3's MaxRetryError and SSLError, or
    raw from ssl) becomes "TLS certificate verify failed: <what was wrong>"."""
    import re

    cause = _innermost(reason)
    verify_message = getattr(cause, "verify_message", None)
    if verify_message:
        return f"TLS certificate verify failed: {str(verify_message).rstrip('.')}"
    if isinstance(cause, OSError) and cause.strerror and not getattr(cause, "library", None):
        return str(cause.strerror)
    text = str(cause)
    for marker in ("Failed to establish a new connection: ", ">: "):
        if marker in text:
            text = text.split(marker, 1)[1]
    text = re.sub(r" \(_ssl\.c:\d+\)", "", text)
    return re.sub(r"\[Errno -?\d+\] ", "", text).rstrip(")'\"").replace("\n", " ")


def _innermost(cause: object) -> object:
    """Follow urllib3's wrapping (MaxRetryError.reason, SSLError(args[0])) to the exception that
    says what happened."""
    for _ in range(8):
        inner = getattr(cause, "reason", None)
        if not isinstance(inner, BaseException):
            args: tuple[object, ...] = getattr(cause, "args", ())
            inner = args[0] if len(args) == 1 and isinstance(args[0], BaseException) else None
        if inner is None or inner is cause:
            return cause
        cause = inner
    return cause


def _forbidden_subject(message: str) -> str:
    # 'emqxes.apps.emqx.io "x" is forbidden: User "bob" cannot patch resource ...' -> 'User "bob"'
    _, _, tail = message.partition("forbidden: ")
    subject, _, _ = tail.partition(" cannot ")
    return f"as {subject}" if subject else ""
