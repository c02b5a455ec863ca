"""Package caches are the agent's data: measuring and trimming them never follows a link out."""

from __future__ import annotations

import os

import pytest

from app.agent.sandbox.caches import RepoCaches, measure, prune, repo_key, trim

pytestmark = pytest.mark.usefixtures("needs_root")  # caches are chowned to uid 1000


def test_a_symlink_planted_in_the_cache_is_never_followed(tmp_path):
    outside = tmp_path / "host"
    outside.mkdir()
    (outside / "precious").write_bytes(b"x" * 1_000_000)
    caches = RepoCaches(tmp_path / "caches", "o/r", 100_000)
    mounts, env = caches.prepare()
    pip = mounts["/cache/pip"]
    os.symlink(outside, pip / "link")  # what the agent can do from inside
    os.symlink(outside / "precious", pip / "file")
    assert measure(pip) < 100_000  # the host's megabyte is not counted through the links
    (pip / "big").write_bytes(b"y" * 200_000)
    assert trim(pip, 100_000) is True  # over its bound: cleared
    assert (outside / "precious").read_bytes() == b"x" * 1_000_000  # nothing outside was touched
    assert list(pip.iterdir()) == [] and os.stat(pip).st_uid == 1000
    assert env == {"PIP_CACHE_DIR": "/cache/pip", "npm_config_cache": "/cache/npm"}


def test_each_repository_has_its_own_cache_and_prune_clears_them(tmp_path):
    a = RepoCaches(tmp_path / "caches", "o/a", 1 << 20).prepare()[0]["/cache/pip"]
    b = RepoCaches(tmp_path / "caches", "o/b", 1 << 20).prepare()[0]["/cache/pip"]
    assert a != b and repo_key("O/A") == repo_key("o/a") != repo_key("o/b")
    (a / "wheel").write_bytes(b"w")
    assert prune(tmp_path / "caches", "o/a") == [repo_key("o/a")]
    assert not a.exists() and b.exists()
    assert sorted(prune(tmp_path / "caches")) == [repo_key("o/b")]


def test_no_caches_when_the_bound_is_zero(tmp_path):
    assert RepoCaches(tmp_path / "caches", "o/r", 0).prepare() == ({}, {})
