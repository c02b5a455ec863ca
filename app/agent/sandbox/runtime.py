"""AgentVine's own agent runtime, for images that are not AgentVine's: what the runtime volume holds,
what its entrypoint does, and the volume's name.

A repository may name an image of its own (``sandbox.image``, within ``AGENTVINE_ALLOWED_IMAGES``):
a team's development image with its toolchains and none of AgentVine's parts. The runtime volume
holds those parts: the pinned Claude Code binary, the static socket forwarder (forwarder.py) and
the entrypoint below. It is mounted read-only at :data:`RUNTIME_DIR` and the container's entrypoint
is replaced by the runtime's; every other setting of the container (uid 1000, no network,
read-only root, limits) is the same as for AgentVine's own images (container.py). So the image
needs only a ``/bin/sh`` and glibc (the Claude Code binary links against it), for the machine's
architecture. The volume's name carries a hash of what goes into it, as an image's tag does;
runtime_build.py builds it (from the ``full`` profile's image, whose compiler links the forwarder).
"""

from __future__ import annotations

import hashlib
import platform

from .forwarder import FORWARDER_C, FORWARDER_NAME
from .layout import CONTAINER_GATEWAY_SOCKET, PINNED, RUNTIME_DIR, RUNTIME_REPOSITORY
from .recipe import image_tag

__all__ = [
    "COMPLETE_MARKER",
    "EXIT_FORWARDER",
    "EXIT_INCOMPLETE",
    "EXIT_NO_BASH",
    "EXIT_NO_GLIBC",
    "NEEDS_BASH",
    "GLIBC_LOADERS",
    "RUNTIME_BIN",
    "RUNTIME_ENTRYPOINT",
    "RUNTIME_EXITS",
    "machine_arch",
    "runtime_entrypoint",
    "runtime_volume_name",
]

RUNTIME_BIN = f"{RUNTIME_DIR}/bin"
RUNTIME_ENTRYPOINT = f"{RUNTIME_DIR}/entrypoint"
#: Written last by the build: a volume without it (a build that died half-way) is never used.
COMPLETE_MARKER = f"{RUNTIME_DIR}/.complete"
#: The dynamic loader the Claude Code binary asks for (its ELF interpreter), per Debian architecture.
GLIBC_LOADERS = {"amd64": "/lib64/ld-linux-x86-64.so.2", "arm64": "/lib/ld-linux-aarch64.so.1"}

# The entrypoint's own exit codes (it runs before anything of the agent's): what the image lacks.
EXIT_NO_GLIBC = 71
EXIT_INCOMPLETE = 72
EXIT_FORWARDER = 73
EXIT_NO_BASH = 74
#: exit code -> the problem's key (texts.IMAGE_PROBLEM in the pipeline says it to people)
RUNTIME_EXITS = {EXIT_NO_GLIBC: "no_glibc", EXIT_INCOMPLETE: "runtime_incomplete", EXIT_FORWARDER: "forwarder",
                 EXIT_NO_BASH: "no_bash"}
#: set in the container's environment when the agent may use the Bash tool
NEEDS_BASH = "AGENTVINE_NEEDS_BASH"

# A POSIX sh script that uses nothing of the image but its /bin/sh (the image may lack grep,
# sleep, even coreutils): tests are shell built-ins, the forwarder waits for its ports itself.
_ENTRYPOINT = r"""#!/bin/sh
# AgentVine's runtime entrypoint, for an image that is not AgentVine's (app/agent/sandbox/runtime.py):
# check what the runtime needs of the image, start the socket forwarder, exec the command.
#
#   AGENTVINE_GATEWAY_PORT  set -> AGENTVINE_GATEWAY_SOCKET (default @GATEWAY_SOCKET@)
#                                  must exist; it is exposed on 127.0.0.1:$AGENTVINE_GATEWAY_PORT
#   AGENTVINE_FORWARDS      more PORT=SOCKET pairs, separated by spaces, exposed the same way
#   AGENTVINE_NEEDS_BASH    set -> the image must have bash (Claude Code's Bash tool runs nothing else)
set -eu
rt=@RUNTIME_DIR@
if [ ! -f "$rt/.complete" ]; then
    echo "agentvine-runtime: the runtime volume at $rt is incomplete" >&2
    exit @EXIT_INCOMPLETE@
fi
if [ ! -e @LOADER@ ]; then
    echo "agentvine-runtime: this image has no glibc (@LOADER@), which Claude Code needs" >&2
    exit @EXIT_NO_GLIBC@
fi
PATH="$rt/bin:${PATH:-/usr/local/bin:/usr/bin:/bin}"
export PATH
# Claude Code's Bash tool wants bash (or zsh) as $SHELL: the image's own, where it has one.
case "${SHELL:-}" in
    */bash|*/zsh) [ -x "$SHELL" ] || SHELL= ;;
    *) SHELL= ;;
esac
if [ -z "$SHELL" ]; then
    for s in /bin/bash /usr/bin/bash /usr/local/bin/bash; do
        if [ -x "$s" ]; then SHELL=$s; break; fi
    done
fi
if [ -z "$SHELL" ] && [ -n "${AGENTVINE_NEEDS_BASH:-}" ]; then
    echo "agentvine-runtime: this image has no bash, which Claude Code's Bash tool needs" >&2
    exit @EXIT_NO_BASH@
fi
export SHELL="${SHELL:-/bin/sh}"
forwards="${AGENTVINE_FORWARDS:-}"
if [ -n "${AGENTVINE_GATEWAY_PORT:-}" ]; then
    sock="${AGENTVINE_GATEWAY_SOCKET:-@GATEWAY_SOCKET@}"
    if [ ! -S "$sock" ]; then
        echo "agentvine-runtime: gateway socket $sock is missing (not mounted?)" >&2
        exit 70
    fi
    forwards="$AGENTVINE_GATEWAY_PORT=$sock $forwards"
fi
if [ -n "${forwards% }" ]; then
    # Word splitting is wanted: one argument per pair. The forwarder returns once all listen.
    "$rt/bin/@FORWARDER@" $forwards || exit @EXIT_FORWARDER@
fi
if [ "$#" -eq 0 ]; then
    set -- claude --version
fi
exec "$@"
"""

#: Bump when what goes into the volume changes in a way the hash cannot see.
RUNTIME_REVISION = "1"


def machine_arch() -> str:
    """This machine's Debian architecture (the runtime's Claude Code binary is built for it)."""
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)


def runtime_entrypoint(arch: str | None = None) -> str:
    loader = GLIBC_LOADERS.get(arch or machine_arch(), GLIBC_LOADERS["amd64"])
    text = _ENTRYPOINT
    for key, value in {"@RUNTIME_DIR@": RUNTIME_DIR, "@LOADER@": loader, "@GATEWAY_SOCKET@": CONTAINER_GATEWAY_SOCKET,
                       "@FORWARDER@": FORWARDER_NAME, "@EXIT_NO_GLIBC@": str(EXIT_NO_GLIBC),
                       "@EXIT_INCOMPLETE@": str(EXIT_INCOMPLETE), "@EXIT_FORWARDER@": str(EXIT_FORWARDER),
                       "@EXIT_NO_BASH@": str(EXIT_NO_BASH)}.items():
        text = text.replace(key, value)
    return text


def runtime_volume_name(claude_version: str = PINNED, arch: str | None = None) -> str:
    """The runtime volume for this Claude Code version on this architecture: its name changes with
    anything that goes into it (the forwarder, the entrypoint, the image it is built from)."""
    h = hashlib.sha256()
    for part in (RUNTIME_REVISION, FORWARDER_C, runtime_entrypoint(arch), image_tag(claude_version, "full")):
        h.update(part.encode())
        h.update(b"\0")
    return f"{RUNTIME_REPOSITORY}-{claude_version}-{h.hexdigest()[:10]}"
