"""The image's root filesystem tarball, made from Debian's archive and the npm registry.

mmdebstrap builds a minimal Debian tree with the packages of recipe.py, the Claude Code binary
fetched (and checked) with ``npm pack`` (straight from the registry where there is no npm, as in
the service's own image) is copied in, and the recipe's set-up script runs in a chroot of it.
These are the steps that need local tools (mmdebstrap) and the network but no Docker; image.py
turns the tarball into an image. :class:`BuildError` is shared by both. :func:`make_rootfs` takes what goes in as a :class:`RootfsSpec`, so the service's own base image
(app/operator/deploy/) is made the same way from its own list.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import tarfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .layout import CLAUDE_NPM_PACKAGE
from .recipe import DEBIAN_SUITE, DPKG_EXCLUDES, PINNED_INTEGRITY

__all__ = [
    "DEFAULT_MIRROR",
    "DEFAULT_SECURITY_MIRROR",
    "BuildError",
    "Log",
    "Mirrors",
    "RootfsSpec",
    "fetch_claude",
    "machine_platform",
    "make_rootfs",
]

DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
NPM_REGISTRY = "https://registry.npmjs.org"  # npm's own default; npm_config_registry overrides it, as for npm


class BuildError(RuntimeError):
    """The sandbox image could not be built; the message says which step failed and why."""


Log = Callable[[str], object]


@dataclass(frozen=True)
class Mirrors:
    """The Debian archives mmdebstrap installs from."""

    debian: str
    security: str


@dataclass(frozen=True)
class RootfsSpec:
    """What goes into a root filesystem: Debian packages on top of ``minbase``, dpkg's path
    excludes, files copied in (path inside -> file outside), and a script run in a chroot of it."""

    packages: tuple[str, ...]
    uploads: dict[str, Path]
    setup: Path
    dpkg_excludes: tuple[str, ...] = DPKG_EXCLUDES



def machine_platform() -> tuple[str, str]:
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


def _npm_pack(npm: str, spec: str, workdir: Path) -> tuple[Path, str | None]:
    """The package's tarball by ``npm pack``, and the integrity npm reports for it."""
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
    return workdir / info["filename"], info.get("integrity")


def _registry_download(package: str, version: str, workdir: Path) -> tuple[Path, str | None]:
    """What ``npm pack`` does, without npm (the service's image has none): the version's document
    from the registry names the tarball and its integrity."""
    registry = os.environ.get("npm_config_registry", NPM_REGISTRY).rstrip("/")
    try:
        with urllib.request.urlopen(f"{registry}/{package.replace('/', '%2f')}/{version}", timeout=60) as answer:
            dist = json.load(answer)["dist"]
        tgz = workdir / dist["tarball"].rsplit("/", 1)[-1]
        with urllib.request.urlopen(dist["tarball"], timeout=60) as answer, open(tgz, "wb") as f:
            shutil.copyfileobj(answer, f, 1 << 20)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BuildError(f"fetching {package}@{version} from {registry} failed: {exc}") from exc
    return tgz, dist.get("integrity")


def fetch_claude(version: str, npm_platform: str, workdir: Path, log: Log) -> Path:
    """Download the platform package (``npm pack``, or from the registry where npm is missing),
    verify it, extract ``claude``."""
    if not re.fullmatch(r"[0-9A-Za-z.+-]+", version):
        raise BuildError(f"bad Claude Code version {version!r}")
    package = f"{CLAUDE_NPM_PACKAGE}-{npm_platform}"
    spec = f"{package}@{version}"
    npm = shutil.which("npm")
    tgz, integrity = _npm_pack(npm, spec, workdir) if npm else _registry_download(package, version, workdir)
    actual = _sri_sha512(tgz)
    if integrity and integrity != actual:
        raise BuildError(f"{spec}: integrity mismatch (the registry says {integrity}, file {actual})")
    pinned = PINNED_INTEGRITY.get((version, npm_platform))
    if pinned is not None and pinned != actual:
        raise BuildError(f"{spec}: integrity {actual} differs from the pinned {pinned}")
    log(f"fetched {spec}{' with npm' if npm else ' from the registry'} ({tgz.stat().st_size / 1e6:.0f} MB, "
        f"{actual[:23]}...{', matches the pin' if pinned else ', no pin for this version'})")
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


def make_rootfs(arch: str, out_tar: Path, spec: RootfsSpec, mirrors: Mirrors, log: Log) -> None:
    """Make the root filesystem tarball ``out_tar`` of ``spec``: its packages, its uploads copied in,
    then its set-up script run in a chroot of it."""
    exe = shutil.which("mmdebstrap")
    if exe is None:
        raise BuildError("mmdebstrap is not installed (apt-get install mmdebstrap)")
    setup = spec.setup
    for p in [*spec.uploads.values(), setup, out_tar]:
        if re.search(r"\s", str(p)):
            raise BuildError(f"build path {p} contains whitespace; set TMPDIR to a plain path")
    cmd = [
        exe,
        "--variant=minbase",
        f"--architectures={arch}",
        "--include=" + ",".join(spec.packages),
        "--aptopt=APT::Install-Recommends \"false\"",
        *[f"--dpkgopt={o}" for o in spec.dpkg_excludes],
    ]
    for inside, outside in spec.uploads.items():
        cmd.append(f"--customize-hook=upload {outside} {inside}")
    cmd += [
        f"--customize-hook=upload {setup} /tmp/agentvine-setup.sh",
        '--customize-hook=chroot "$1" /bin/sh /tmp/agentvine-setup.sh',
        '--customize-hook=chroot "$1" rm -f /tmp/agentvine-setup.sh',
        DEBIAN_SUITE,
        str(out_tar),
        f"deb {mirrors.debian} {DEBIAN_SUITE} main",
        f"deb {mirrors.debian} {DEBIAN_SUITE}-updates main",
        f"deb {mirrors.security} {DEBIAN_SUITE}-security main",
    ]
    env = dict(os.environ)
    env.setdefault("DEBIAN_FRONTEND", "noninteractive")
    _run(cmd, log, env=env)
