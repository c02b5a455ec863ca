"""`agentvine sandbox prune`, through the real CLI."""

import os
import subprocess
import sys

import pytest

from app.agent.sandbox.caches import RepoCaches


@pytest.mark.usefixtures("needs_root")  # caches are chowned to uid 1000
def test_prune_removes_the_caches(tmp_path):
    pip = RepoCaches(tmp_path / "caches", "o/r", 1 << 20).prepare()[0]["/cache/pip"]
    (pip / "wheel").write_bytes(b"w")
    env = {**os.environ, "AGENTVINE_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "app", "sandbox", "prune"], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "removed the package caches of 1 repository" in done.stdout
    assert not pip.exists()
    bad = subprocess.run([sys.executable, "-m", "app", "sandbox", "prune", "--repo", "x"], env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "owner/name" in bad.stderr and "Traceback" not in bad.stderr
