"""What goes into the sandbox image, and the tag that names it.

The recipe is text: the Debian packages, the entrypoint and set-up scripts, the dpkg excludes and
the image's environment. Its hash is part of the image tag (:data:`DEFAULT_IMAGE`), so a change
to the recipe gives a new tag. It lives apart from the build steps (image.py, which needs
mmdebstrap, npm and Docker) because the settings and the runtime need the tag without the
builder; the facts the runtime also uses (uid, paths, labels, version) are in layout.py.
"""

from __future__ import annotations

import hashlib
import json

from app.agent.claude.command import CLAUDE_CODE_ENV

from .layout import (
    AGENT_GID,
    AGENT_HOME,
    AGENT_UID,
    ENTRYPOINT_PATH,
    IMAGE_REPOSITORY,
    PINNED,
    WORKSPACE,
)

__all__ = [
    "DEBIAN_PACKAGES",
    "DEBIAN_SUITE",
    "DEFAULT_IMAGE",
    "DPKG_EXCLUDES",
    "ENTRYPOINT_SCRIPT",
    "IMAGE_ENV",
    "PINNED_INTEGRITY",
    "SETUP_SCRIPT",
    "image_tag",
    "recipe_hash",
]

#: ``dist.integrity`` of the per-platform packages at :data:`PINNED`, as the npm registry
#: published them. A build of another version relies on npm's own integrity check only.
PINNED_INTEGRITY: dict[tuple[str, str], str] = {
    (
        "2.1.330",
        "linux-x64",
    ): "sha512-9Gn+V7DtJ8M1nztP9CeDVl9g3RtrepI7rOFTyPRRnZe8D6zebIHKmC7OvBauucuAP0X0k85SDN/LPVZyjsGezQ==",
    (
        "2.1.330",
        "linux-arm64",
    ): "sha512-V4yanAY5EA5UpwwRPtjSfqDbNqAlUJeVn3NYZw2AgmRHjdpSsLtHAzbxRXfkAnbjwTXzE0uedjQxUY02ARPcsA==",
}

DEBIAN_SUITE = "bookworm"
#: Debian packages on top of ``minbase`` (which already has bash, coreutils, grep, sed, ...).
#: git: the agent inspects history and diffs (commits and pushes happen on the host);
#: ca-certificates: TLS through the egress proxy (CONNECT); socat: the socket forwarders.
DEBIAN_PACKAGES = ("git", "ca-certificates", "socat")

#: Kept in the Python package (not a separate asset file) so that it ships with any install of
#: the package and so that its text is part of the image tag's recipe hash.
ENTRYPOINT_SCRIPT = r"""#!/bin/sh
# agentvine-entrypoint: start the gateway forwarder (if asked to), then exec the command.
#
#   AGENTVINE_GATEWAY_PORT    set  -> the socket AGENTVINE_GATEWAY_SOCKET (default
#                                     /run/agentvine/gateway.sock) must exist; socat exposes it
#                                     on 127.0.0.1:$AGENTVINE_GATEWAY_PORT (the container has no
#                                     other network than loopback).
#                             unset -> no forwarder.
set -eu

if [ -n "${AGENTVINE_GATEWAY_PORT:-}" ]; then
    sock="${AGENTVINE_GATEWAY_SOCKET:-/run/agentvine/gateway.sock}"
    port="$AGENTVINE_GATEWAY_PORT"
    if [ ! -S "$sock" ]; then
        echo "agentvine-entrypoint: gateway socket $sock is missing (not mounted?)" >&2
        exit 70
    fi
    socat "TCP-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr" "UNIX-CONNECT:$sock" &
    socat_pid=$!
    # Wait (at most ~5 s) until the forwarder listens, so the first request cannot race it.
    hexport=$(printf '%04X' "$port")
    tries=0
    until grep -q "0100007F:$hexport 00000000:0000 0A" /proc/net/tcp 2>/dev/null; do
        if ! kill -0 "$socat_pid" 2>/dev/null; then
            echo "agentvine-entrypoint: socat exited before it listened on 127.0.0.1:$port" >&2
            exit 70
        fi
        tries=$((tries + 1))
        if [ "$tries" -gt 500 ]; then
            echo "agentvine-entrypoint: socat did not listen on 127.0.0.1:$port within 5 s" >&2
            exit 70
        fi
        sleep 0.01
    done
fi

# The egress proxy's forwarder (app/agent/egress/), on its own port, the same way:
#   AGENTVINE_EGRESS_PORT     set  -> the socket AGENTVINE_EGRESS_SOCKET (default
#                                     /run/agentvine/egress.sock) on 127.0.0.1:$AGENTVINE_EGRESS_PORT.
if [ -n "${AGENTVINE_EGRESS_PORT:-}" ]; then
    esock="${AGENTVINE_EGRESS_SOCKET:-/run/agentvine/egress.sock}"
    eport="$AGENTVINE_EGRESS_PORT"
    if [ ! -S "$esock" ]; then
        echo "agentvine-entrypoint: egress socket $esock is missing (not mounted?)" >&2
        exit 70
    fi
    socat "TCP-LISTEN:$eport,bind=127.0.0.1,fork,reuseaddr" "UNIX-CONNECT:$esock" &
    esocat_pid=$!
    ehex=$(printf '%04X' "$eport")
    tries=0
    until grep -q "0100007F:$ehex 00000000:0000 0A" /proc/net/tcp 2>/dev/null; do
        if ! kill -0 "$esocat_pid" 2>/dev/null; then
            echo "agentvine-entrypoint: socat exited before it listened on 127.0.0.1:$eport" >&2
            exit 70
        fi
        tries=$((tries + 1))
        if [ "$tries" -gt 500 ]; then
            echo "agentvine-entrypoint: socat did not listen on 127.0.0.1:$eport within 5 s" >&2
            exit 70
        fi
        sleep 0.01
    done
fi

if [ "$#" -eq 0 ]; then
    set -- claude --version
fi
exec "$@"
"""

# Runs inside the new root filesystem (chroot) at the end of mmdebstrap.
SETUP_SCRIPT = f"""#!/bin/sh
set -eu
chmod 0755 /usr/local/bin/claude {ENTRYPOINT_PATH}
groupadd --gid {AGENT_GID} agent
useradd --uid {AGENT_UID} --gid {AGENT_GID} --create-home --home-dir {AGENT_HOME} \\
    --shell /bin/bash agent
mkdir -p {WORKSPACE} /run/agentvine
chown {AGENT_UID}:{AGENT_GID} {WORKSPACE}
chmod 0755 /run/agentvine
# The workspace is a bind mount owned by uid {AGENT_UID}; trust it whoever owns it.
git config --system safe.directory '*'
git config --system init.defaultBranch main
# Defence in depth: no setuid/setgid programs (no-new-privileges already neuters them).
find / -xdev -type f -perm /6000 -exec chmod ug-s {{}} +
rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/log/* \\
    /usr/share/doc/*/changelog* /tmp/* 2>/dev/null || true
"""

DPKG_EXCLUDES = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/lintian/*",
    "path-exclude=/usr/share/bash-completion/*",
)

IMAGE_ENV = {
    "HOME": AGENT_HOME,
    "USER": "agent",
    "SHELL": "/bin/bash",
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    **CLAUDE_CODE_ENV,
}

#: Bump when the recipe changes in a way the hash below cannot see.
RECIPE_REVISION = "1"


def recipe_hash() -> str:
    h = hashlib.sha256()
    for part in (
        RECIPE_REVISION,
        DEBIAN_SUITE,
        ",".join(DEBIAN_PACKAGES),
        ENTRYPOINT_SCRIPT,
        SETUP_SCRIPT,
        "\n".join(DPKG_EXCLUDES),
        json.dumps(IMAGE_ENV, sort_keys=True),
    ):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:10]


def image_tag(claude_version: str = PINNED) -> str:
    """The versioned tag for an image built from this recipe with that Claude Code version."""
    return f"{IMAGE_REPOSITORY}:{claude_version}-{recipe_hash()}"


DEFAULT_IMAGE = image_tag(PINNED)
