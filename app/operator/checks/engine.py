"""The Docker engine the sandboxes run on: it answers, it has the sandbox image, and it sees the job
folders at the paths this process sees them (it bind-mounts them by path, from its own host)."""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from .result import CheckResult, Context, failed, ok, skipped

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
FIX_ENGINE = ("start the engine (systemctl start docker), or set DOCKER_HOST to one that runs; in a "
              "container, mount the host's socket: -v /var/run/docker.sock:/var/run/docker.sock")
FIX_PATHS = ("the engine mounts job folders by their path on its own host: mount each at the same path "
             "(-v /srv/agentvine:/srv/agentvine with AGENTVINE_DATA_DIR=/srv/agentvine, and TMPDIR likewise; "
             "docs/deploy.md)")
NO_ENGINE = "no Docker engine answers"
# Not the sandboxes' `agentvine=1`: a worker starting meanwhile removes every container carrying that.
PROBE_LABEL = "agentvine.doctor"


def _engine_address(environ: dict[str, str]) -> str:
    return environ.get("DOCKER_HOST") or DEFAULT_SOCKET


def _short(exc: BaseException) -> str:
    """docker-py nests the cause several exceptions deep; the innermost says it best."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "…"


def check_docker(ctx: Context) -> CheckResult:
    import docker

    where = _engine_address(ctx.environ)
    try:
        client = docker.from_env(timeout=int(max(1, ctx.timeout)))
        version = client.version()
    except Exception as exc:  # noqa: BLE001 - DockerException, connection and permission errors alike
        if isinstance(exc, PermissionError) or "Permission denied" in str(exc):
            return failed("docker", f"{where}: permission denied", "run as a user of the `docker` group, or as root")
        return failed("docker", f"no Docker engine answers at {where} ({_short(exc)})", FIX_ENGINE)
    ctx.docker = client
    return ok("docker", f"Docker {version.get('Version', '?')} answers at {where}")


def check_sandbox_image(ctx: Context) -> CheckResult:
    import docker

    if ctx.docker is None or ctx.settings is None:
        return skipped("sandbox-image", NO_ENGINE)
    tag = ctx.settings.sandbox_image
    try:
        image = ctx.docker.images.get(tag)
    except docker.errors.ImageNotFound:
        return failed("sandbox-image", f"the engine has no image {tag}",
                      "run: agentvine sandbox build (or set AGENTVINE_SANDBOX_IMAGE to one it has)")
    except docker.errors.DockerException as exc:
        return failed("sandbox-image", f"the engine could not look up {tag}: {_short(exc)}")
    ctx.image_present = True
    return ok("sandbox-image", f"{tag} ({image.attrs.get('Size', 0) / 1e6:.0f} MB)")


def shared_folders(ctx: Context) -> list[Path]:
    """What the engine mounts by path: the job folders, and the gateway's sockets (under TMPDIR)."""
    assert ctx.settings is not None
    return [ctx.settings.jobs_dir.resolve(), Path(tempfile.gettempdir()).resolve()]


def check_engine_paths(ctx: Context) -> CheckResult:
    """A file written here must be what a container started through the engine reads at that path."""
    if ctx.docker is None or ctx.settings is None or not ctx.image_present:
        return skipped("engine-paths", "no engine with the sandbox image")
    folders = shared_folders(ctx)
    name, token = f".agentvine-doctor-{secrets.token_hex(6)}", secrets.token_hex(16)
    markers = []
    try:
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
            markers.append(folder / name)
            markers[-1].write_text(token)
            markers[-1].chmod(0o644)
        seen = _read_through_engine(ctx, folders, name)
    except OSError as exc:
        return failed("engine-paths", f"cannot write in {exc.filename}: {exc.strerror}")
    finally:
        for marker in markers:
            marker.unlink(missing_ok=True)
    where = " and ".join(str(f) for f in folders)
    if seen is not None:
        return failed("engine-paths", seen, FIX_PATHS)
    return ok("engine-paths", f"the engine sees {where} as this process does")


def _read_through_engine(ctx: Context, folders: list[Path], name: str) -> str | None:
    """None when a container reads back every marker; else what went wrong, in words."""
    import docker

    assert ctx.settings is not None
    mounts = [docker.types.Mount(f"/probe/{i}", str(f), type="bind", read_only=True) for i, f in enumerate(folders)]
    expected = (folders[0] / name).read_text()
    try:
        out = ctx.docker.containers.run(
            ctx.settings.sandbox_image, ["sh", "-c", f"for d in /probe/*; do cat \"$d/{name}\" || exit 3; echo; done"],
            remove=True, network_mode="none", read_only=True, cap_drop=["ALL"], security_opt=["no-new-privileges"],
            user=f"{os.geteuid()}:{os.getegid()}", labels={PROBE_LABEL: "1"}, mounts=mounts, stderr=True)
    except docker.errors.ContainerError:
        return "a container started through the engine finds other folders at these paths (no file written here)"
    except docker.errors.APIError as exc:  # e.g. "bind source path does not exist"
        return f"the engine cannot mount these paths: {exc.explanation or exc}"
    except Exception as exc:  # noqa: BLE001 - a timeout or a lost connection
        return f"the probe container did not run: {_short(exc)}"
    lines = out.decode(errors="replace").split()
    if lines != [expected] * len(folders):
        return "a container started through the engine reads other files at these paths"
    return None
