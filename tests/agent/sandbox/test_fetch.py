"""Claude Code's binary where there is no npm (the service's own image has none): straight from the
npm registry, checked against the registry's integrity and the pin, as `npm pack` is."""

from __future__ import annotations

import shutil
import subprocess

from app.agent.sandbox import rootfs
from app.agent.sandbox.layout import PINNED


def test_without_npm_the_binary_comes_from_the_registry_and_matches_the_pin(tmp_path, monkeypatch):
    which = shutil.which
    monkeypatch.setattr(rootfs.shutil, "which", lambda name: None if name == "npm" else which(name))
    lines: list[str] = []
    claude = rootfs.fetch_claude(PINNED, rootfs.machine_platform()[1], tmp_path, lines.append)
    assert "from the registry" in lines[0] and "matches the pin" in lines[0], lines
    assert list(tmp_path.iterdir()) == [claude]  # the tarball is gone, the binary stays
    version = subprocess.run([claude, "--version"], capture_output=True, text=True, timeout=60)
    assert PINNED in version.stdout, version
