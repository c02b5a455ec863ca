"""What `pip install .` ships: every package, the default bot configuration, the GitHub fake's data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.support.env import ROOT


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_under_app_and_bot_config_is_listed_in_pyproject():
    setuptools = _pyproject()["tool"]["setuptools"]
    on_disk = {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "app").rglob("__init__.py")}
    bot_config = setuptools["package-dir"]["app.bot_config"]
    on_disk |= {".".join(("app.bot_config", *d.relative_to(ROOT / bot_config).parts))
                for d in [ROOT / bot_config, *(ROOT / bot_config).rglob("*")] if d.is_dir()}
    assert set(setuptools["packages"]) == on_disk, "list them in pyproject.toml, [tool.setuptools] packages"


def test_the_shipped_openapi_subset_is_the_shared_one(testdata):
    from app.fakes.github.openapi import SHIPPED_SPEC_PATH

    shared = testdata / "github" / "openapi" / "rest-subset.json"
    assert SHIPPED_SPEC_PATH.read_bytes() == shared.read_bytes(), (
        f"copy {shared} to {SHIPPED_SPEC_PATH} (see app/fakes/github/NOTICE.md)")


# Never part of what is installed; build/ and *.egg-info are pip's own leftovers (a stale build/lib
# could hide a file that is no longer shipped).
_NOT_SOURCE = shutil.ignore_patterns(".git", ".cache", ".venv", ".agentvine", ".pytest_cache", "__pycache__",
                                     "build", "dist", "*.egg-info", "bench", "tests")
# What would point the installed copy back at this checkout or the shared test data.
_CHECKOUT_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "AGENTVINE_OPENAPI_SPEC", "AGENTVINE_BOT_CONFIG",
                       "AGENTVINE_TESTDATA", "AGENTVINE_DATA_DIR")


@pytest.mark.docker
@pytest.mark.claude
def test_an_installed_copy_runs_the_demo_outside_the_checkout(tmp_path, full_image):
    """`pip install .` (not editable) ships all the demo needs: no ../shared, no repository around it."""
    # A copy of the checkout: pip builds in the source folder and would leave build/ there.
    source = tmp_path / "agentvine"
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCE)
    venv = tmp_path / "venv"
    # --system-site-packages: the dependencies are already installed, nothing is downloaded;
    # --without-pip: the system's pip (seen through it) installs into the venv, no ensurepip.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    installed = subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                                "--no-build-isolation", "--no-compile", source], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    elsewhere = tmp_path / "elsewhere"  # no checkout, no ../shared beside it
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in _CHECKOUT_VARIABLES}
    env.update(AGENTVINE_SANDBOX_IMAGE=full_image, PYTHONNOUSERSITE="1")

    where = subprocess.run(
        [python, "-c", "import app, app.domain.config as c, app.fakes.github.openapi as o;"
                       "print(app.__file__, c.DEFAULT_BOT_CONFIG_DIR, o.default_spec_path(), sep=chr(10))"],
        cwd=elsewhere, env=env, check=True, capture_output=True, text=True).stdout.split()
    site_packages = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    assert [Path(p).is_relative_to(site_packages) for p in where] == [True, True, True], where
    agentvine = venv / "bin" / "agentvine"
    assert agentvine.read_text().splitlines()[0] == f"#!{python}"  # the console script runs the venv's python

    demo = subprocess.run([agentvine, "demo"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "check run “AgentVine · bugfix”: completed → success" in demo.stdout
    assert "succeeded (success) — Opened #2" in demo.stdout
    assert "Pull request #2: Words separated by tabs are counted as one" in demo.stdout
    assert "Ran 2 tests" in demo.stdout  # python3 in the full image ran the demo repository's tests
