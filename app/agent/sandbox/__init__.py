"""The sandbox: the container image Claude Code runs in, and the runner that starts it.

See docs/sandbox.md. Public API::

    from app.agent.sandbox import (DEFAULT_IMAGE, build_image, SandboxSpec, SandboxResult,
                             run_sandbox, remove_orphans)
"""

from .container import (
    SandboxError,
    SandboxResult,
    SandboxSpec,
    container_name,
    remove_orphans,
    run_sandbox,
)
from .image import (
    AGENT_HOME,
    AGENT_UID,
    CONTAINER_GATEWAY_SOCKET,
    DEFAULT_GATEWAY_PORT,
    DEFAULT_IMAGE,
    PINNED,
    WORKSPACE,
    BuildError,
    build_image,
    image_exists,
    image_tag,
)

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
