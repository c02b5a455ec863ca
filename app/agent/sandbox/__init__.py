"""The sandbox: the container image Claude Code runs in, and the runner that starts it.

See docs/sandbox.md. Public API::

    from app.agent.sandbox import (DEFAULT_IMAGE, build_image, SandboxSpec, SandboxResult,
                                   run_sandbox, remove_orphans)

The builder's names (``build_image``, ``BuildError``, ``image_exists``) are loaded from image.py
only when asked for, so that running jobs never imports the builder.
"""

from .container import SandboxError, SandboxSpec, container_name
from .layout import (
    AGENT_HOME,
    AGENT_UID,
    CONTAINER_GATEWAY_SOCKET,
    DEFAULT_GATEWAY_PORT,
    PINNED,
    WORKSPACE,
)
from .orphans import remove_orphans
from .recipe import DEFAULT_IMAGE, image_tag
from .runner import SandboxResult, run_sandbox

_BUILDER_NAMES = frozenset({"BuildError", "build_image", "image_exists"})


def __getattr__(name: str):
    if name in _BUILDER_NAMES:
        from . import image

        return getattr(image, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AGENT_HOME",
    "AGENT_UID",
    "BuildError",
    "CONTAINER_GATEWAY_SOCKET",
    "DEFAULT_GATEWAY_PORT",
    "DEFAULT_IMAGE",
    "PINNED",
    "SandboxError",
    "SandboxResult",
    "SandboxSpec",
    "WORKSPACE",
    "build_image",
    "container_name",
    "image_exists",
    "image_tag",
    "remove_orphans",
    "run_sandbox",
]
