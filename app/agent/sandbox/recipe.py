"""What goes into the sandbox images, and the tags that name them.

The recipe is text: the Debian packages, the entrypoint and set-up scripts, the dpkg excludes and
the image's environment. There are two profiles (:data:`PROFILES`): ``base`` (git, socat, the CLI)
and ``full`` (base plus the toolchains a repository's tests need: Python, Node.js, a C compiler,
ripgrep, jq, curl, unzip). A profile's hash is part of its tag (:data:`PROFILE_IMAGES`), so a
change to its recipe gives a new tag. It lives apart from the build steps (image.py, which needs
mmdebstrap, npm and Docker) because the settings and the runtime need the tags without the
builder; the facts the runtime also uses (uid, paths, labels, version) are in layout.py.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

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
    "DEFAULT_PROFILE",
    "DPKG_EXCLUDES",
    "ENTRYPOINT_SCRIPT",
    "IMAGE_ENV",
    "PINNED_INTEGRITY",
    "PROFILES",
    "PROFILE_IMAGES",
    "Profile",
    "SETUP_SCRIPT",
    "image_tag",
    "profile_of",
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

# forward NAME SOCKET PORT: socat from 127.0.0.1:PORT to the Unix socket, in the background; returns
# once it listens (at most ~5 s), so the first request cannot race it.
forward() {
    name=$1 sock=$2 port=$3
    if [ ! -S "$sock" ]; then
        echo "agentvine-entrypoint: $name socket $sock is missing (not mounted?)" >&2
        exit 70
    fi
    socat "TCP-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr" "UNIX-CONNECT:$sock" &
    pid=$!
    hexport=$(printf '%04X' "$port")
    tries=0
    until grep -q "0100007F:$hexport 00000000:0000 0A" /proc/net/tcp 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
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
}

if [ -n "${AGENTVINE_GATEWAY_PORT:-}" ]; then
    forward gateway "${AGENTVINE_GATEWAY_SOCKET:-/run/agentvine/gateway.sock}" "$AGENTVINE_GATEWAY_PORT"
fi
# The egress proxy's forwarder (app/agent/egress/), on its own port, the same way:
#   AGENTVINE_EGRESS_PORT     set  -> the socket AGENTVINE_EGRESS_SOCKET (default
#                                     /run/agentvine/egress.sock) on 127.0.0.1:$AGENTVINE_EGRESS_PORT.
if [ -n "${AGENTVINE_EGRESS_PORT:-}" ]; then
    forward egress "${AGENTVINE_EGRESS_SOCKET:-/run/agentvine/egress.sock}" "$AGENTVINE_EGRESS_PORT"
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



@dataclass(frozen=True)
class Profile:
    """One sandbox image: Debian packages on top of :data:`DEBIAN_PACKAGES`, shell run after
    :data:`SETUP_SCRIPT` in the chroot, environment over :data:`IMAGE_ENV`, and the commands its
    smoke test runs (each must exit 0; they are not part of the tag: they test, they do not build)."""

    name: str
    packages: tuple[str, ...] = ()
    setup: str = ""
    env: dict[str, str] = field(default_factory=dict)
    smoke: tuple[str, ...] = ()

    @property
    def all_packages(self) -> tuple[str, ...]:
        return DEBIAN_PACKAGES + self.packages

    @property
    def setup_script(self) -> str:
        return SETUP_SCRIPT + self.setup

    @property
    def image_env(self) -> dict[str, str]:
        return {**IMAGE_ENV, **self.env}


_LOCAL_BIN = f"{AGENT_HOME}/.local/bin"
PROFILES: dict[str, Profile] = {
    "base": Profile("base"),
    "full": Profile(
        "full",
        # What a repository's own set-up and tests most often call. No recommends (as for base):
        # build-essential brings gcc, g++, make and libc6-dev; npm brings Debian's node modules.
        packages=("python3", "python3-pip", "python3-venv", "nodejs", "npm", "build-essential",
                  "ripgrep", "jq", "curl", "unzip"),
        # PEP 668's marker makes pip refuse every install outside a venv. The root filesystem is
        # read-only, so Debian's packages cannot be broken anyway: without the marker, `pip install`
        # falls back to a user install in the job's home (~/.local), which is what a job wants.
        setup="rm -f /usr/lib/python3*/EXTERNALLY-MANAGED\n",
        # `pip install --user` and `npm install -g` both land in ~/.local (the job's home, writable).
        # Python's bytecode goes to /tmp: __pycache__ folders in the workspace would be committed.
        env={"PATH": f"{_LOCAL_BIN}:" + IMAGE_ENV["PATH"], "NPM_CONFIG_PREFIX": f"{AGENT_HOME}/.local",
             "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONPYCACHEPREFIX": "/tmp/pycache"},
        smoke=("python3 --version", "python3 -m pip --version", "python3 -m venv /tmp/venv", "node --version",
               "npm --version", "gcc --version", "make --version", "rg --version", "jq --version",
               "curl --version", "unzip -v"),
    ),
}
#: The image of new installations (the settings' default): a repository's tests can run in it.
DEFAULT_PROFILE = "full"

#: Bump when the recipe changes in a way the hash below cannot see.
RECIPE_REVISION = "1"


def recipe_hash(profile: str = "base") -> str:
    p = PROFILES[profile]
    h = hashlib.sha256()
    parts = [RECIPE_REVISION, DEBIAN_SUITE, ",".join(p.all_packages), ENTRYPOINT_SCRIPT, p.setup_script,
             "\n".join(DPKG_EXCLUDES), json.dumps(p.image_env, sort_keys=True)]
    # base's parts are what they were before profiles existed, so its tag (and a built image) stays.
    if profile != "base":
        parts.append(profile)
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:10]


def image_tag(claude_version: str = PINNED, profile: str = DEFAULT_PROFILE) -> str:
    """The versioned tag for an image built from a profile's recipe with that Claude Code version."""
    middle = "" if profile == "base" else f"{profile}-"
    return f"{IMAGE_REPOSITORY}:{claude_version}-{middle}{recipe_hash(profile)}"


PROFILE_IMAGES: dict[str, str] = {name: image_tag(PINNED, name) for name in PROFILES}
DEFAULT_IMAGE = PROFILE_IMAGES[DEFAULT_PROFILE]


def profile_of(tag: str) -> str | None:
    """The profile whose pinned image ``tag`` is, if any."""
    return next((name for name, t in PROFILE_IMAGES.items() if t == tag), None)
