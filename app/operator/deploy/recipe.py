"""What the service's base image holds, and the tag that names it (a hash of this recipe, so a change
here gives a new tag and an unchanged recipe is never built twice)."""

from __future__ import annotations

import hashlib
import json

from app.agent.sandbox.recipe import DEBIAN_SUITE, DPKG_EXCLUDES

BASE_REPOSITORY = "agentvine-base"
# Debian bookworm's python3 and glibc: the wheelhouse is fetched for exactly these.
PYTHON_VERSION = "3.11"
GLIBC_MINOR = 36

BASE_PACKAGES = (
    "python3", "python3-venv",  # the service's virtual environment (the Dockerfile fills it)
    "git", "ca-certificates",  # host git (app/agent/boundary) and TLS to GitHub and the model API
    "docker.io",  # the docker CLI, and dockerd where the container runs its own engine (a Fly Machine)
    "tini",  # PID 1: forwards signals to `agentvine serve`, reaps what dies
    "mmdebstrap", "e2fsprogs", "mount",  # `agentvine sandbox build`; each job's loop-mounted filesystem
)

BASE_SETUP_SCRIPT = """#!/bin/sh
set -eu
rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/log/* /tmp/* 2>/dev/null || true
"""

BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}

#: Bump when the recipe changes in a way the hash below cannot see.
BASE_REVISION = "1"


def base_recipe_hash() -> str:
    h = hashlib.sha256()
    for part in (BASE_REVISION, DEBIAN_SUITE, ",".join(BASE_PACKAGES), BASE_SETUP_SCRIPT, "\n".join(DPKG_EXCLUDES),
                 json.dumps(BASE_ENV, sort_keys=True)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:10]


BASE_IMAGE = f"{BASE_REPOSITORY}:{DEBIAN_SUITE}-{base_recipe_hash()}"
DEFAULT_SERVICE_IMAGE = "agentvine:latest"


def base_changes() -> list[str]:
    """`docker import`'s Dockerfile-like changes for the base image."""
    return [*(f"ENV {k}={v}" for k, v in BASE_ENV.items()), 'CMD ["/bin/sh"]',
            f"LABEL agentvine.base=1 agentvine.recipe={base_recipe_hash()} org.opencontainers.image.title={BASE_REPOSITORY}"]
