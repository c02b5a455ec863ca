"""Build the sandbox image without any container registry.

The image is made from parts that come from Debian's package archive and the npm registry only:

1. ``mmdebstrap`` makes a minimal Debian root filesystem (variant ``minbase`` plus git,
   ca-certificates and socat; no man pages, docs or locales; no setuid bits).
2. The Claude Code CLI comes from the npm registry as the per-platform package
   ``@anthropic-ai/claude-code-linux-<arch>`` (the same package that
   ``@anthropic-ai/claude-code`` lists in its ``optionalDependencies``). That package holds one
   self-contained native binary (``claude``) that links only against glibc (libc, libm,
   libpthread, libdl, librt), so no Node.js goes into the image. It is fetched with ``npm pack``
   (npm checks the registry's integrity hash; for the pinned version we also check it against
   the hash pinned here) and copied to ``/usr/local/bin/claude``.
3. A non-root user ``agent`` (uid/gid 1000, home ``/home/agent``) and the entrypoint script
   (:data:`ENTRYPOINT_SCRIPT`) that starts the socket forwarder, then execs the command.
4. ``docker import`` of the tarball with ``--change`` for USER, WORKDIR, ENV, ENTRYPOINT, LABEL;
   the new image is smoke-tested (``claude --version`` as uid 1000, no network, read-only root)
   under a temporary tag before it gets its real tag, so a broken build never takes the tag.

The tag (:data:`DEFAULT_IMAGE`) carries the Claude Code version and a hash of the recipe, so a
change to the recipe gives a new tag and :func:`build_image` skips the work when the tag exists.

Run ``python -m app.agent.sandbox build --help`` (root, or a user that may run mmdebstrap in its
``unshare`` mode, and that may talk to the Docker engine).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Callable

__all__ = [
    "AGENT_GID",
    "AGENT_HOME",
    "AGENT_UID",
    "BuildError",
    "CLAUDE_CODE_VERSION",
    "CLAUDE_NPM_PACKAGE",
    "CONTAINER_GATEWAY_SOCKET",
    "DEBIAN_PACKAGES",
    "DEFAULT_GATEWAY_PORT",
    "DEFAULT_IMAGE",
    "ENTRYPOINT_SCRIPT",
    "IMAGE_REPOSITORY",
    "PINNED",
    "WORKSPACE",
    "build_image",
    "image_exists",
    "image_tag",
]

# --- what goes into the image -------------------------------------------------------------

#: Pinned Claude Code version (``npm view @anthropic-ai/claude-code version``). ``./dev``
#: reads this line to install the same version on the host.
CLAUDE_CODE_VERSION = "2.1.330"
PINNED = CLAUDE_CODE_VERSION
CLAUDE_NPM_PACKAGE = "@anthropic-ai/claude-code"

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
#: ca-certificates: TLS for a later allow-listed egress proxy; socat: the socket forwarder.
DEBIAN_PACKAGES = ("git", "ca-certificates", "socat")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"

IMAGE_REPOSITORY = "agentvine-sandbox"
AGENT_UID = 1000
AGENT_GID = 1000
AGENT_HOME = "/home/agent"
WORKSPACE = "/workspace"
#: Where the host's gateway socket is mounted inside the container.
CONTAINER_GATEWAY_SOCKET = "/run/agentvine/gateway.sock"
#: The loopback port on which the entrypoint's forwarder exposes the gateway socket.
DEFAULT_GATEWAY_PORT = 8787
ENTRYPOINT_PATH = "/usr/local/bin/agentvine-entrypoint"

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

if [ "$#" -eq 0 ]; then
    set -- claude --version
fi
exec "$@"
"""

# Runs inside the new root filesystem (chroot) at the end of mmdebstrap.
_SETUP_SCRIPT = f"""#!/bin/sh
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

_DPKG_EXCLUDES = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/lintian/*",
    "path-exclude=/usr/share/bash-completion/*",
)

_IMAGE_ENV = {
    "HOME": AGENT_HOME,
    "USER": "agent",
    "SHELL": "/bin/bash",
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
}

#: Bump when the recipe changes in a way the hash below cannot see.
_RECIPE_REVISION = "1"


def _recipe_hash() -> str:
    h = hashlib.sha256()
    for part in (
        _RECIPE_REVISION,
        DEBIAN_SUITE,
        ",".join(DEBIAN_PACKAGES),
        ENTRYPOINT_SCRIPT,
        _SETUP_SCRIPT,
        "\n".join(_DPKG_EXCLUDES),
        json.dumps(_IMAGE_ENV, sort_keys=True),
    ):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:10]


def image_tag(claude_version: str = PINNED) -> str:
    """The versioned tag for an image built from this recipe with that Claude Code version."""
    return f"{IMAGE_REPOSITORY}:{claude_version}-{_recipe_hash()}"


DEFAULT_IMAGE = image_tag(PINNED)


class BuildError(RuntimeError):
    """The sandbox image could not be built; the message says which step failed and why."""


Log = Callable[[str], object]

# --- helpers --------------------------------------------------------------------------------


def _platform() -> tuple[str, str]:
    """(Debian architecture, npm platform suffix) for this machine."""
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        return "amd64", "linux-x64"
    if machine in ("aarch64", "arm64"):
        return "arm64", "linux-arm64"
    raise BuildError(f"unsupported machine architecture {machine!r} (need x86_64 or aarch64)")


def _run(cmd: list[str], log: Log, *, cwd: str | None = None, env: dict | None = None) -> str:
    """Run a command, passing its output to ``log`` line by line; return stdout+stderr."""
    log(f"$ {' '.join(cmd)}")
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
    except FileNotFoundError as exc:
        raise BuildError(
            f"{cmd[0]} is not installed (run .ci/install-docker.sh, or apt-get install "
            f"mmdebstrap npm)"
        ) from exc
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip("\n")
        lines.append(line)
        log(f"  {line}")
    rc = proc.wait()
    if rc != 0:
        tail = "\n".join(lines[-30:])
        raise BuildError(f"{cmd[0]} failed with exit code {rc}:\n{tail}")
    return "\n".join(lines)


def _sri_sha512(path: Path) -> str:
    h = hashlib.sha512()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha512-" + base64.b64encode(h.digest()).decode()


def _fetch_claude(version: str, npm_platform: str, workdir: Path, log: Log) -> Path:
    """Download the platform package with ``npm pack``, verify it, extract ``claude``."""
    if not re.fullmatch(r"[0-9A-Za-z.+-]+", version):
        raise BuildError(f"bad Claude Code version {version!r}")
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError("npm is not installed (apt-get install npm)")
    spec = f"{CLAUDE_NPM_PACKAGE}-{npm_platform}@{version}"
    out = subprocess.run(
        [npm, "pack", spec, "--pack-destination", str(workdir), "--json"],
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise BuildError(f"npm pack {spec} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    try:
        info = json.loads(out.stdout)[0]
    except (ValueError, IndexError, KeyError) as exc:
        raise BuildError(f"npm pack {spec}: unexpected output {out.stdout[:500]!r}") from exc
    tgz = workdir / info["filename"]
    actual = _sri_sha512(tgz)
    if info.get("integrity") and info["integrity"] != actual:
        raise BuildError(f"{spec}: integrity mismatch (npm says {info['integrity']}, file {actual})")
    pinned = PINNED_INTEGRITY.get((version, npm_platform))
    if pinned is not None and pinned != actual:
        raise BuildError(f"{spec}: integrity {actual} differs from the pinned {pinned}")
    log(f"fetched {spec} ({tgz.stat().st_size / 1e6:.0f} MB, {actual[:23]}..."
        f"{', matches the pin' if pinned else ', no pin for this version'})")
    dest = workdir / "claude"
    with tarfile.open(tgz) as tar:
        member = tar.getmember("package/claude")
        if not member.isfile():
            raise BuildError(f"{spec}: package/claude is not a regular file")
        src = tar.extractfile(member)
        assert src is not None
        with src, open(dest, "wb") as f:
            shutil.copyfileobj(src, f, 1 << 20)
    dest.chmod(0o755)
    tgz.unlink()
    return dest


def _mmdebstrap(
    arch: str,
    out_tar: Path,
    uploads: dict[str, Path],
    setup: Path,
    mirror: str,
    security_mirror: str,
    log: Log,
) -> None:
    exe = shutil.which("mmdebstrap")
    if exe is None:
        raise BuildError("mmdebstrap is not installed (apt-get install mmdebstrap)")
    for p in [*uploads.values(), setup, out_tar]:
        if re.search(r"\s", str(p)):
            raise BuildError(f"build path {p} contains whitespace; set TMPDIR to a plain path")
    cmd = [
        exe,
        "--variant=minbase",
        f"--architectures={arch}",
        "--include=" + ",".join(DEBIAN_PACKAGES),
        "--aptopt=APT::Install-Recommends \"false\"",
        *[f"--dpkgopt={o}" for o in _DPKG_EXCLUDES],
    ]
    for inside, outside in uploads.items():
        cmd.append(f"--customize-hook=upload {outside} {inside}")
    cmd += [
        f"--customize-hook=upload {setup} /tmp/agentvine-setup.sh",
        '--customize-hook=chroot "$1" /bin/sh /tmp/agentvine-setup.sh',
        '--customize-hook=chroot "$1" rm -f /tmp/agentvine-setup.sh',
        DEBIAN_SUITE,
        str(out_tar),
        f"deb {mirror} {DEBIAN_SUITE} main",
        f"deb {mirror} {DEBIAN_SUITE}-updates main",
        f"deb {security_mirror} {DEBIAN_SUITE}-security main",
    ]
    env = dict(os.environ)
    env.setdefault("DEBIAN_FRONTEND", "noninteractive")
    _run(cmd, log, env=env)


def _docker_client():
    import docker  # imported here so that the rest of the module works without docker-py

    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # docker.errors.DockerException and connection errors
        raise BuildError(f"cannot reach the Docker engine: {exc}") from exc
    return client


def image_exists(tag: str, client=None) -> bool:
    import docker

    client = client or _docker_client()
    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def _import(client, tar: Path, tag: str, claude_version: str) -> None:
    repo, tagpart = _split_tag(tag)
    changes = [f"USER {AGENT_UID}:{AGENT_GID}", f"WORKDIR {WORKSPACE}"]
    changes += [f"ENV {k}={v}" for k, v in _IMAGE_ENV.items()]
    changes += [
        f'ENTRYPOINT ["{ENTRYPOINT_PATH}"]',
        'CMD ["claude", "--version"]',
        f"LABEL agentvine.sandbox=1 agentvine.claude-version={claude_version} "
        f"agentvine.recipe={_recipe_hash()} org.opencontainers.image.title={IMAGE_REPOSITORY}",
    ]
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


def _smoke_test(client, tag: str, claude_version: str, log: Log) -> None:
    import docker

    script = "id -u && claude --version && git --version && socat -V | sed -n 2p"
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
            labels={"agentvine": "1", "agentvine.job": "image-smoke-test"},
            stderr=True,
        ).decode(errors="replace")
    except docker.errors.ContainerError as exc:
        raise BuildError(f"smoke test of {tag} failed: {exc}") from exc
    log("smoke test: " + " | ".join(out.split("\n")).strip(" |"))
    lines = out.splitlines()
    if not lines or lines[0].strip() != str(AGENT_UID) or claude_version not in out:
        raise BuildError(f"smoke test of {tag} failed; output:\n{out}")


# --- the public entry point ----------------------------------------------------------------


def build_image(
    tag: str = DEFAULT_IMAGE,
    *,
    claude_version: str = PINNED,
    log: Log = print,
    force: bool = False,
    client=None,
    mirror: str | None = None,
    security_mirror: str | None = None,
    workdir: str | os.PathLike | None = None,
) -> None:
    """Build the sandbox image ``tag`` (skipped if it already exists, unless ``force``).

    Needs: a reachable Docker engine, ``mmdebstrap`` (as root, or in its unshare mode as a user
    with user namespaces), ``npm``, and access to Debian's archive and the npm registry.
    ``mirror`` / ``security_mirror`` default to ``$AGENTVINE_DEBIAN_MIRROR`` /
    ``$AGENTVINE_DEBIAN_SECURITY_MIRROR`` or deb.debian.org. Raises :class:`BuildError`.
    """
    import docker

    client = client or _docker_client()
    try:
        previous = client.images.get(tag).id
    except docker.errors.ImageNotFound:
        previous = None
    if previous is not None and not force:
        log(f"sandbox image {tag} already exists; not rebuilding (force=True to rebuild)")
        return
    arch, npm_platform = _platform()
    mirror = mirror or os.environ.get("AGENTVINE_DEBIAN_MIRROR") or DEFAULT_MIRROR
    security_mirror = (
        security_mirror
        or os.environ.get("AGENTVINE_DEBIAN_SECURITY_MIRROR")
        or DEFAULT_SECURITY_MIRROR
    )
    t0 = time.monotonic()
    log(f"building sandbox image {tag} (Debian {DEBIAN_SUITE}/{arch}, Claude Code "
        f"{claude_version} {npm_platform})")
    with tempfile.TemporaryDirectory(prefix="agentvine-sandbox-", dir=workdir) as tmp:
        tmpdir = Path(tmp)
        t = time.monotonic()
        claude = _fetch_claude(claude_version, npm_platform, tmpdir, log)
        log(f"step npm: {time.monotonic() - t:.1f}s")

        entry = tmpdir / "agentvine-entrypoint"
        entry.write_text(ENTRYPOINT_SCRIPT)
        setup = tmpdir / "setup.sh"
        setup.write_text(_SETUP_SCRIPT)
        rootfs = tmpdir / "rootfs.tar"

        t = time.monotonic()
        _mmdebstrap(
            arch,
            rootfs,
            {"/usr/local/bin/claude": claude, ENTRYPOINT_PATH: entry},
            setup,
            mirror,
            security_mirror,
            log,
        )
        claude.unlink()
        log(f"step mmdebstrap: {time.monotonic() - t:.1f}s, rootfs tarball "
            f"{rootfs.stat().st_size / 1e6:.0f} MB")

        t = time.monotonic()
        staging = f"{IMAGE_REPOSITORY}:staging-{os.getpid()}-{int(time.time())}"
        _import(client, rootfs, staging, claude_version)
        rootfs.unlink()
        log(f"step docker import: {time.monotonic() - t:.1f}s")
    try:
        _smoke_test(client, staging, claude_version, log)
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


def _split_tag(tag: str) -> tuple[str, str]:
    repo, _, tagpart = tag.rpartition(":")
    if not repo or "/" in tagpart:
        return tag, "latest"
    return repo, tagpart


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.agent.sandbox build",
        description="Build the AgentVine sandbox image (no container registry needed).",
    )
    parser.add_argument("--tag", default=None, help=f"image tag (default {DEFAULT_IMAGE})")
    parser.add_argument("--claude-version", default=PINNED, help=f"default {PINNED}")
    parser.add_argument("--force", action="store_true", help="rebuild even if the tag exists")
    parser.add_argument("--print-tag", action="store_true", help="print the tag and exit")
    args = parser.parse_args(argv)
    tag = args.tag or image_tag(args.claude_version)
    if args.print_tag:
        print(tag)
        return 0
    try:
        build_image(tag, claude_version=args.claude_version, force=args.force,
                    log=lambda s: print(s, flush=True))
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
