"""The EMQX operator (kopf): turns EMQX resources into running EMQX 5 clusters."""

from kubectl_emqx import __version__

__all__ = ["__version__"]
