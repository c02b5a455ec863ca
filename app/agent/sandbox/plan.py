"""How a job's image is run: as AgentVine built it, or with AgentVine's runtime mounted into it.

Before anything of a job starts, the image is looked at (never pulled: no registry is assumed, so
"present on this engine" is what counts, and an operator pulls or loads the images they allow):

* it must exist, and be a Linux image of this machine's architecture (the runtime's Claude Code
  binary is built for it);
* an image AgentVine built (label ``agentvine.sandbox=1``, every profile's) runs as built; any other
  gets the runtime volume (runtime.py), which must have been built (``agentvine sandbox build``);
* the volumes it declares are covered by tmpfs (container.py), and each must be a plain absolute
  path.

What the image itself must have (``/bin/sh``, glibc) is found when its container is created and
run (container.check_shell, the runtime entrypoint's exit codes). Every problem is an
:class:`ImageUnusable` with a key the pipeline turns into a message on GitHub.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from .container import ImageUnusable, import_docker
from .layout import AGENT_HOME, PINNED, RUNTIME_DIR, WORKSPACE
from .recipe import profile_of
from .runtime import machine_arch, runtime_volume_name

__all__ = ["ImagePlan", "plan_image"]

_MAX_IMAGE_VOLUMES = 32


@dataclass(frozen=True)
class ImagePlan:
    image: str
    #: the runtime volume to mount (an image that is not AgentVine's), or None
    runtime_volume: str | None = None
    #: the volumes the image declares, to cover with tmpfs
    image_volumes: tuple[str, ...] = ()


def plan_image(client, image: str, claude_version: str = PINNED) -> ImagePlan:
    """How to run ``image`` here; :class:`ImageUnusable` when it cannot be (blocking: Docker calls)."""
    docker = import_docker()
    try:
        attrs = client.images.get(image).attrs
    except docker.errors.ImageNotFound as exc:
        raise ImageUnusable("missing", image=image, profile=profile_of(image) or "") from exc
    except docker.errors.APIError as exc:  # e.g. a reference the engine refuses to parse
        raise ImageUnusable("missing", image=image, profile="") from exc
    config = attrs.get("Config") or {}
    os_name, arch, want = str(attrs.get("Os") or ""), str(attrs.get("Architecture") or ""), machine_arch()
    if os_name != "linux" or arch != want:
        raise ImageUnusable("platform", image=image, platform=f"{os_name}/{arch}", want=f"linux/{want}")
    volumes = _declared_volumes(image, config.get("Volumes"))
    if (config.get("Labels") or {}).get("agentvine.sandbox") == "1":
        return ImagePlan(image, None, volumes)
    runtime = runtime_volume_name(claude_version)
    try:
        client.volumes.get(runtime)
    except docker.errors.NotFound as exc:
        raise ImageUnusable("no_runtime", image=image, volume=runtime) from exc
    return ImagePlan(image, runtime, volumes)


# Folders AgentVine mounts that the agent writes to, or that carry AgentVine's runtime and sockets: a
# volume the image declares inside one would be a mount point runc makes within a folder the agent
# controls (it may have planted a symlink there in an earlier step), so such an image is refused.
_OURS = (WORKSPACE, AGENT_HOME, "/cache", RUNTIME_DIR, "/run/agentvine")


def _inside_ours(path: str) -> bool:
    return any(path.startswith(folder + "/") for folder in _OURS)


def _declared_volumes(image: str, declared: object) -> tuple[str, ...]:
    if not declared:
        return ()
    paths = list(declared) if isinstance(declared, dict) else []
    plain = [p for p in paths if isinstance(p, str) and p.startswith("/") and p != "/" and posixpath.normpath(p) == p
             and len(p) < 256 and p.isprintable() and "," not in p and ":" not in p]
    if len(plain) != len(paths) or len(paths) > _MAX_IMAGE_VOLUMES or any(map(_inside_ours, plain)):
        raise ImageUnusable("volumes", image=image)
    return tuple(sorted(plain))
