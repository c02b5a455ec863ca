"""Images that are not AgentVine's, made here without a registry: a team's development image (the
base profile's Debian root filesystem without Claude Code, socat, the entrypoint or the agent user),
and images that lack what AgentVine's runtime needs (no /bin/sh, no glibc, another architecture).
Each is tagged by what it is made from and made once per engine."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

TEAM_REPOSITORY = "agentvine-test-team"
# What a team's image does not have: AgentVine's parts, and its user (uid 1000 has no name there).
_NOT_IN_A_TEAM_IMAGE = ("usr/local/bin/claude", "usr/local/bin/agentvine-entrypoint", "usr/bin/socat",
                        "usr/bin/socat1", "usr/bin/filan", "usr/bin/procan", "home/agent", "workspace", "run/agentvine")
_ACCOUNTS = ("etc/passwd", "etc/group", "etc/shadow", "etc/gshadow")
# A team image's own configuration, as a Dockerfile would leave it; its VOLUME must never become a volume.
_TEAM_CHANGES = ['CMD ["bash"]', "ENV TEAM_TOOLCHAIN=1", 'VOLUME ["/cache"]', "WORKDIR /src", "USER root",
                 "LABEL org.example.team=dev"]
REVISION = "1"


def _exists(client, tag: str) -> bool:
    import docker

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


class _Chunks(io.RawIOBase):
    """A file over docker-py's export chunks, for tarfile's stream mode."""

    def __init__(self, chunks) -> None:
        self.chunks, self.pending = iter(chunks), b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.pending:
            self.pending = next(self.chunks, b"")
            if not self.pending:
                return 0
        n = min(len(buffer), len(self.pending))
        buffer[:n], self.pending = self.pending[:n], self.pending[n:]
        return n


def _filtered_export(client, image: str, out: Path, drop: tuple[str, ...]) -> None:
    container = client.containers.create(image, ["true"])
    try:
        chunks = io.BufferedReader(_Chunks(container.export(chunk_size=1 << 20)), 1 << 20)
        with tarfile.open(fileobj=chunks, mode="r|") as source, tarfile.open(out, "w") as target:
            for member in source:
                name = member.name.lstrip("./")
                if any(name == d or name.startswith(d + "/") for d in drop):
                    continue
                data = source.extractfile(member) if member.isfile() else None
                if name in _ACCOUNTS and data is not None:
                    kept = b"".join(line for line in data.read().splitlines(True) if not line.startswith(b"agent:"))
                    member.size, data = len(kept), io.BytesIO(kept)
                target.addfile(member, data)
    finally:
        container.remove(force=True)


def _import(client, tar: Path | bytes, tag: str, changes: list[str]) -> str:
    repository, _, name = tag.rpartition(":")
    if isinstance(tar, Path):
        client.api.import_image_from_file(str(tar), repository=repository, tag=name, changes=changes)
    else:
        client.api.import_image_from_data(tar, repository=repository, tag=name, changes=changes)
    assert _exists(client, tag), f"importing {tag} failed"
    return tag


def _load(client, layer: bytes, tag: str, arch: str) -> str:
    """`docker load` of an image written here in `docker save`'s format, whose configuration says
    `arch` (docker import on this engine ignores --platform)."""
    diff_id = hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": arch, "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]}}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": [f"{diff_id}/layer.tar"]}]).encode()
    client.images.load(_tar_of({"manifest.json": manifest, config_name: config, f"{diff_id}/layer.tar": layer}))
    assert _exists(client, tag), f"loading {tag} failed"
    return tag


def team_image(client, base_image: str, *, without_bash: bool = False) -> str:
    """The base profile's image as a team would have it: no Claude Code, no socat, no agent user."""
    base_id = client.images.get(base_image).id.split(":")[-1][:12]
    flavour = "nobash-" if without_bash else ""
    tag = f"{TEAM_REPOSITORY}:{flavour}{base_id}-{REVISION}"
    if _exists(client, tag):
        return tag
    drop = _NOT_IN_A_TEAM_IMAGE + (("usr/bin/bash", "bin/bash") if without_bash else ())
    with tempfile.TemporaryDirectory(prefix="agentvine-team-") as tmp:
        tar = Path(tmp) / "rootfs.tar"
        _filtered_export(client, base_image, tar, drop)
        return _import(client, tar, tag, _TEAM_CHANGES)


def _tar_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def shell_less_image(client) -> str:
    """An image with a file and nothing to run (no /bin/sh)."""
    return _import(client, _tar_of({"hello.txt": b"hello\n"}), f"{TEAM_REPOSITORY}:no-shell-{REVISION}", ["CMD [\"/hello\"]"])


def foreign_arch_image(client, arch: str) -> str:
    """An image that says it is for `arch` (its contents do not matter: it is refused before it runs)."""
    return _load(client, _tar_of({"bin/sh": b"#!/not-a-shell\n"}), f"{TEAM_REPOSITORY}:{arch}-{REVISION}", arch)


def busybox_image(client, arch: str, mirror: str = "http://deb.debian.org/debian") -> str:
    """Debian's statically linked busybox as /bin/sh and nothing else: a shell, and no glibc (as in a
    musl-based image such as Alpine). Made with mmdebstrap's extract variant (about 3 s)."""
    recipe = hashlib.sha256(f"busybox-static {arch} {REVISION}".encode()).hexdigest()[:10]
    tag = f"{TEAM_REPOSITORY}:busybox-{recipe}"
    if _exists(client, tag):
        return tag
    with tempfile.TemporaryDirectory(prefix="agentvine-busybox-") as tmp:
        tar = Path(tmp) / "rootfs.tar"
        subprocess.run([shutil.which("mmdebstrap") or "mmdebstrap", "--variant=extract", "--include=busybox-static",
                        f"--architectures={arch}", "bookworm", str(tar), f"deb {mirror} bookworm main"],
                       check=True, capture_output=True, timeout=300)
        with tarfile.open(tar, "a") as rootfs:  # the extract variant installs nothing, so no /bin/sh link
            link = tarfile.TarInfo("./bin/sh")
            link.type, link.linkname, link.mode = tarfile.SYMTYPE, "busybox", 0o777
            rootfs.addfile(link)
        return _import(client, tar, tag, ['CMD ["/bin/sh"]'])
