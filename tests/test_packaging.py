"""What `pip install .` ships: every package, the default bot configuration, the GitHub fake's data."""

from __future__ import annotations

import tomllib

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
