"""The EMQX release a cluster runs, as the plugin's verbs judge it (pure): EMQX's own word in
status.emqxNodes when every running node agrees, else the spec's image."""

from __future__ import annotations

from typing import Any


def running_release(body: dict[str, Any]) -> tuple[str, tuple[int, int, int]]:
    from kubectl_emqx.domain import spec, versions

    reported = {(str(n.get("edition") or ""), str(n.get("version") or ""))
                for n in (body.get("status") or {}).get("emqxNodes") or [] if n.get("node_status") == "running"}
    image = spec.normalize(body).image_info
    if len(reported) == 1:
        edition, text = next(iter(reported))
        try:
            return (edition if edition in versions.EDITIONS else image.edition), versions.parse_version(text)
        except ValueError:
            pass
    return image.edition, image.version
