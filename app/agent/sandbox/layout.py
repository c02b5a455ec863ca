"""What the sandbox image looks like from outside: the facts its builder and its runtime share.

The container runtime (container.py), the host's workspace (workspace.py) and the settings need
to know the Claude Code version, the uid the agent runs as, where the workspace, the home and the
gateway socket sit inside the image, and how AgentVine labels its containers. These live here,
in a module that imports nothing, so that running a job never loads the image builder (image.py)
and the builder and the runtime cannot disagree. ``./dev`` reads :data:`CLAUDE_CODE_VERSION`
from this file with sed, so that line keeps its plain ``NAME = "value"`` form.
"""

from __future__ import annotations

__all__ = [
    "AGENT_GID",
    "AGENT_HOME",
    "AGENT_UID",
    "CLAUDE_CODE_VERSION",
    "CLAUDE_NPM_PACKAGE",
    "CONTAINER_GATEWAY_SOCKET",
    "CONTAINER_EGRESS_SOCKET",
    "DEFAULT_EGRESS_PORT",
    "DEFAULT_GATEWAY_PORT",
    "ENTRYPOINT_PATH",
    "IMAGE_REPOSITORY",
    "LABEL",
    "LABEL_JOB",
    "NAME_PREFIX",
    "PINNED",
    "RUNTIME_DIR",
    "RUNTIME_REPOSITORY",
    "WORKSPACE",
]

#: Pinned Claude Code version (``npm view @anthropic-ai/claude-code version``). ``./dev``
#: reads this line to install the same version on the host.
CLAUDE_CODE_VERSION = "2.1.330"
PINNED = CLAUDE_CODE_VERSION
CLAUDE_NPM_PACKAGE = "@anthropic-ai/claude-code"

IMAGE_REPOSITORY = "agentvine-sandbox"
AGENT_UID = 1000
AGENT_GID = 1000
AGENT_HOME = "/home/agent"
WORKSPACE = "/workspace"
#: Where the host's gateway socket is mounted inside the container.
CONTAINER_GATEWAY_SOCKET = "/run/agentvine/gateway.sock"
#: The loopback port on which the entrypoint's forwarder exposes the gateway socket.
DEFAULT_GATEWAY_PORT = 8787
#: Where the host's egress proxy socket is mounted, and the loopback port its forwarder listens on.
CONTAINER_EGRESS_SOCKET = "/run/agentvine/egress.sock"
DEFAULT_EGRESS_PORT = 3128
ENTRYPOINT_PATH = "/usr/local/bin/agentvine-entrypoint"
#: Where AgentVine's own agent runtime (runtime.py) is mounted, read-only, in an image that is not
#: one of AgentVine's; a runtime volume is named ``RUNTIME_REPOSITORY-<claude version>-<hash>``.
RUNTIME_DIR = "/opt/agentvine"
RUNTIME_REPOSITORY = "agentvine-runtime"

#: Every AgentVine container carries ``LABEL=1``; a job's also ``LABEL_JOB=<job id>``.
LABEL = "agentvine"
LABEL_JOB = "agentvine.job"
#: A job's container is named ``NAME_PREFIX + job id``.
NAME_PREFIX = "agentvine-"
