"""Build the sandbox image without any container registry.

The image is made from parts that come from Debian's package archive and the npm registry only:

1. ``mmdebstrap`` makes a minimal Debian root filesystem (variant ``minbase`` plus git,
   ca-certificates and socat, and the profile's toolchains; no man pages, docs or locales; no
   setuid bits).
2. The Claude Code CLI comes from the npm registry as the per-platform package
   ``@anthropic-ai/claude-code-linux-<arch>`` (the same package that
   ``@anthropic-ai/claude-code`` lists in its ``optionalDependencies``). That package holds one
   self-contained native binary (``claude``) that links only against glibc (libc, libm,
   libpthread, libdl, librt), so no Node.js goes into the image. It is fetched with ``npm pack``
   (npm checks the registry's integrity hash; for the pinned version we also check it against
   the hash pinned here) and copied to ``/usr/local/bin/claude``.
3. A non-root user ``agent`` (uid/gid 1000, home ``/home/agent``) and the entrypoint script
   (``ENTRYPOINT_SCRIPT`` in recipe.py) that starts the socket forwarder, then execs the command.
4. ``docker import`` of the tarball with ``--change`` for USER, WORKDIR, ENV, ENTRYPOINT, LABEL;
   the new image is smoke-tested (``claude --version`` as uid 1000, no network, read-only root)
   under a temporary tag before it gets its real tag, so a broken build never takes the tag.

What goes into each profile's image (packages, scripts, environment) and its tag are in recipe.py;
the root filesystem steps (1-3) are in rootfs.py; this module runs them and does the Docker steps.
Each profile's tag (recipe.PROFILE_IMAGES) carries the Claude Code version and a hash of its
recipe, so a change to the recipe gives a new tag and :func:`build_image` skips the work when the
tag exists.

Run ``agentvine sandbox build --help`` (root, or a user that may run mmdebstrap in its
``unshare`` mode, and that may talk to the Docker engine).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .layout import AGENT_GID, AGENT_UID, ENTRYPOINT_PATH, IMAGE_REPOSITORY, LABEL, LABEL_JOB, PINNED, WORKSPACE
from .recipe import (
    DEBIAN_SUITE,
    DEFAULT_PROFILE,
    ENTRYPOINT_SCRIPT,
    PROFILES,
    Profile,
    image_tag,
    recipe_hash,
)
from .rootfs import (
    DEFAULT_MIRROR,
    DEFAULT_SECURITY_MIRROR,
    BuildError,
    Log,
    Mirrors,
    RootfsSpec,
    fetch_claude,
    machine_platform,
    make_rootfs,
)

__all__ = ["BuildError", "BuildOptions", "build_image", "docker_client", "image_exists", "import_rootfs", "main"]


@dataclass(frozen=True)
class BuildOptions:
    """What to build and from where (the tag and the plumbing are :func:`build_image`'s own).

    ``mirror`` / ``security_mirror`` default to ``$AGENTVINE_DEBIAN_MIRROR`` /
    ``$AGENTVINE_DEBIAN_SECURITY_MIRROR`` or deb.debian.org; ``workdir`` holds the temporary
    build directory (default: the system's)."""

    claude_version: str = PINNED
    force: bool = False
    #: which of recipe.PROFILES (``base``, ``full``)
    profile: str = DEFAULT_PROFILE
    mirror: str | None = None
    security_mirror: str | None = None
    workdir: str | os.PathLike | None = None

    def tag(self) -> str:
        """The tag of what these options build (the profile's recipe, the Claude Code version)."""
        return image_tag(self.claude_version, self.profile)

    def mirrors(self) -> Mirrors:
        return Mirrors(
            debian=self.mirror or os.environ.get("AGENTVINE_DEBIAN_MIRROR") or DEFAULT_MIRROR,
            security=(
                self.security_mirror
                or os.environ.get("AGENTVINE_DEBIAN_SECURITY_MIRROR")
                or DEFAULT_SECURITY_MIRROR
            ),
        )


def docker_client(timeout: int = 60):
    """A client of the engine that answers (BuildError otherwise); `timeout`: seconds per request."""
    import docker  # imported here so that the rest of the module works without docker-py

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as exc:  # docker.errors.DockerException and connection errors
        raise BuildError(f"cannot reach the Docker engine: {exc}") from exc
    return client


def image_exists(tag: str, client=None) -> bool:
    import docker

    client = client or docker_client()
    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def _import(client, tar: Path, tag: str, claude_version: str, profile: Profile) -> None:
    changes = [f"USER {AGENT_UID}:{AGENT_GID}", f"WORKDIR {WORKSPACE}"]
    changes += [f"ENV {k}={v}" for k, v in profile.image_env.items()]
    changes += [
        f'ENTRYPOINT ["{ENTRYPOINT_PATH}"]',
        'CMD ["claude", "--version"]',
        f"LABEL agentvine.sandbox=1 agentvine.claude-version={claude_version} agentvine.profile={profile.name} "
        f"agentvine.recipe={recipe_hash(profile.name)} org.opencontainers.image.title={IMAGE_REPOSITORY}",
    ]
    import_rootfs(client, tar, tag, changes)


def import_rootfs(client, tar: Path, tag: str, changes: list[str]) -> None:
    """``docker import`` of a root filesystem tarball as ``tag``, with Dockerfile-like ``changes``."""
    repo, tagpart = _split_tag(tag)
    result = client.api.import_image_from_file(
        str(tar), repository=repo, tag=tagpart, changes=changes
    )
    text = result if isinstance(result, str) else json.dumps(result)
    for line in text.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if isinstance(msg, dict) and msg.get("error"):
            raise BuildError(f"docker import failed: {msg['error']}")
    if not image_exists(tag, client):
        raise BuildError(f"docker import did not create {tag}: {text[-500:]}")


def _smoke_test(client, tag: str, claude_version: str, profile: Profile, log: Log) -> None:
    import docker

    # Each of the profile's tools must run as the agent does (uid 1000, read-only root); the first
    # line of each output is kept for the log.
    check = 'check() { out=$("$@" 2>&1) || { echo "smoke test: $* failed: $out"; exit 1; }; printf "%s\\n" "$out" | head -n 1; }'
    tools = "".join(f" && check {cmd}" for cmd in profile.smoke)
    script = f"{check}; id -u && claude --version && git --version && socat -V | sed -n 2p{tools}"
    try:
        out = client.containers.run(
            tag,
            ["/bin/sh", "-c", script],
            remove=True,
            network_mode="none",
            read_only=True,
            tmpfs={"/tmp": "rw,nosuid,nodev,size=64m"},
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            user=f"{AGENT_UID}:{AGENT_GID}",
            labels={LABEL: "1", LABEL_JOB: "image-smoke-test"},
            stderr=True,
        ).decode(errors="replace")
    except (docker.errors.ContainerError, docker.errors.APIError) as exc:  # APIError: the engine could not start it
        raise BuildError(f"smoke test of {tag} failed: {exc}") from exc
    log("smoke test: " + " | ".join(out.split("\n")).strip(" |"))
    lines = out.splitlines()
    if not lines or lines[0].strip() != str(AGENT_UID) or claude_version not in out:
        raise BuildError(f"smoke test of {tag} failed; output:\n{out}")


# --- the public entry point ----------------------------------------------------------------


def build_image(tag: str | None = None, options: BuildOptions = BuildOptions(), *, log: Log = print,
                client=None) -> str:
    """Build the sandbox image of ``options.profile`` as ``tag`` (default: the profile's own tag,
    :meth:`BuildOptions.tag`); skipped if it already exists, unless ``options.force``. Returns the tag.

    Needs: a reachable Docker engine, ``mmdebstrap`` (as root, or in its unshare mode as a user
    with user namespaces), ``npm``, and access to Debian's archive and the npm registry (see
    :class:`BuildOptions` for the mirrors). Raises :class:`BuildError`.
    """
    if options.profile not in PROFILES:
        raise BuildError(f"unknown profile {options.profile!r} (one of {', '.join(PROFILES)})")
    tag = tag or options.tag()
    client = client or docker_client()
    previous = _image_id(client, tag)
    if previous is not None and not options.force:
        log(f"sandbox image {tag} already exists; not rebuilding (force=True to rebuild)")
        return tag
    t0 = time.monotonic()
    staging = _build_staging(client, tag, options, log)
    try:
        _smoke_test(client, staging, options.claude_version, PROFILES[options.profile], log)
        client.images.get(staging).tag(*_split_tag(tag))
    finally:
        try:
            client.images.remove(staging, noprune=True)
        except Exception:  # noqa: BLE001 - the staging tag is cosmetic
            pass
    new = client.images.get(tag)
    if previous is not None and previous != new.id:
        try:  # the image this tag pointed to, unless something still uses it
            client.images.remove(previous, noprune=False)
        except Exception:  # noqa: BLE001
            pass
    size = new.attrs.get("Size", 0)
    log(f"built {tag}: {size / 1e6:.0f} MB in {time.monotonic() - t0:.1f}s")
    return tag


def _image_id(client, tag: str) -> str | None:
    import docker

    try:
        return client.images.get(tag).id
    except docker.errors.ImageNotFound:
        return None


def _build_staging(client, tag: str, options: BuildOptions, log: Log) -> str:
    """Fetch Claude Code, make the root filesystem and import it under a temporary tag (returned),
    which gets the real tag only once the smoke test passed."""
    arch, npm_platform = machine_platform()
    mirrors = options.mirrors()
    claude_version = options.claude_version
    profile = PROFILES[options.profile]
    log(f"building sandbox image {tag} (profile {profile.name}, Debian {DEBIAN_SUITE}/{arch}, Claude Code "
        f"{claude_version} {npm_platform})")
    with tempfile.TemporaryDirectory(prefix="agentvine-sandbox-", dir=options.workdir) as tmp:
        tmpdir = Path(tmp)
        t = time.monotonic()
        claude = fetch_claude(claude_version, npm_platform, tmpdir, log)
        log(f"step npm: {time.monotonic() - t:.1f}s")

        entry = tmpdir / "agentvine-entrypoint"
        entry.write_text(ENTRYPOINT_SCRIPT)
        setup = tmpdir / "setup.sh"
        setup.write_text(profile.setup_script)
        rootfs = tmpdir / "rootfs.tar"

        t = time.monotonic()
        uploads = {"/usr/local/bin/claude": claude, ENTRYPOINT_PATH: entry}
        make_rootfs(arch, rootfs, RootfsSpec(profile.all_packages, uploads, setup), mirrors, log)
        claude.unlink()
        log(f"step mmdebstrap: {time.monotonic() - t:.1f}s, rootfs tarball "
            f"{rootfs.stat().st_size / 1e6:.0f} MB")

        t = time.monotonic()
        staging = f"{IMAGE_REPOSITORY}:staging-{os.getpid()}-{int(time.time())}"
        _import(client, rootfs, staging, claude_version, profile)
        rootfs.unlink()
        log(f"step docker import: {time.monotonic() - t:.1f}s")
    return staging


def _split_tag(tag: str) -> tuple[str, str]:
    repo, _, tagpart = tag.rpartition(":")
    if not repo or "/" in tagpart:
        return tag, "latest"
    return repo, tagpart


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="agentvine sandbox build",
        description="Build the AgentVine sandbox images (no container registry needed). Each is skipped when "
                    "its tag exists.",
    )
    parser.add_argument("--profile", choices=[*PROFILES, "all"], default="all",
                        help=f"which image: {', '.join(PROFILES)}, or all of them (the default); building full "
                             "also makes the runtime volume for images that are not AgentVine's")
    parser.add_argument("--tag", default=None, help="image tag (default: the profile's; only with one --profile)")
    parser.add_argument("--claude-version", default=PINNED, help=f"default {PINNED}")
    parser.add_argument("--force", action="store_true", help="rebuild even if the tag exists")
    parser.add_argument("--print-tag", action="store_true", help="print the tag(s) and exit")
    args = parser.parse_args(argv)
    profiles = list(PROFILES) if args.profile == "all" else [args.profile]
    if args.tag and len(profiles) > 1:
        parser.error("--tag names one image: give one --profile too")
    plans = [BuildOptions(claude_version=args.claude_version, force=args.force, profile=p) for p in profiles]
    if args.print_tag:
        print("\n".join(args.tag or o.tag() for o in plans))
        return 0
    log = lambda line: print(line, flush=True)  # noqa: E731
    try:
        for options in plans:
            build_image(args.tag, options, log=log)
        if "full" in profiles and not args.tag:  # the runtime for other images is made from the full image
            from .runtime_build import build_runtime

            build_runtime(args.claude_version, force=args.force, log=log)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
