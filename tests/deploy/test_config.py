"""compose.yaml, fly.toml and the Dockerfile name only variables something reads: a Settings field,
the settings file's, or the entrypoint's own. And the data directory keeps one path inside and out."""

from __future__ import annotations

import re
import tomllib

import yaml

from app.settings import ENV_FILE_VARIABLE, Settings
from tests.support.env import ROOT

SETTINGS = {f"AGENTVINE_{name.upper()}" for name in Settings.model_fields} | {"ANTHROPIC_API_KEY", ENV_FILE_VARIABLE}
START_SCRIPT = (ROOT / "deploy" / "agentvine-start").read_text()
ENTRYPOINT = set(re.findall(r"\$\{?(AGENTVINE_[A-Z_]+)", START_SCRIPT)) - SETTINGS
KNOWN = SETTINGS | ENTRYPOINT | {"PORT", "TMPDIR", "DOCKER_HOST"}


def test_the_entrypoint_reads_its_own_two_variables_and_documents_them():
    assert ENTRYPOINT == {"AGENTVINE_START_DOCKERD", "AGENTVINE_DOCKERD_DATA_ROOT"}
    assert all(f"#   {name}" in START_SCRIPT for name in ENTRYPOINT)


def test_compose_runs_on_the_hosts_engine_with_the_data_dir_at_the_same_path():
    service = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["agentvine"]
    env = service["environment"]
    assert set(env) <= KNOWN, set(env) - KNOWN
    mounts = dict(volume.split(":", 1) for volume in service["volumes"])
    assert mounts["/var/run/docker.sock"] == "/var/run/docker.sock"
    data = env["AGENTVINE_DATA_DIR"]
    assert mounts[data] == data, "the engine mounts job folders by their host path"
    assert env[ENV_FILE_VARIABLE].startswith(data + "/")
    assert service["ports"][0].endswith(":8080")


def test_fly_runs_its_own_engine_with_everything_on_its_one_volume():
    fly = tomllib.loads((ROOT / "fly.toml").read_text())
    env = fly["env"]
    assert set(env) <= KNOWN, set(env) - KNOWN
    assert env["AGENTVINE_START_DOCKERD"] == "1"
    (volume,) = fly["mounts"]
    for path in (env["AGENTVINE_DATA_DIR"], env["AGENTVINE_DOCKERD_DATA_ROOT"]):
        assert path.startswith(volume["destination"] + "/"), path
    assert fly["http_service"]["internal_port"] == 8080 and fly["http_service"]["checks"][0]["path"] == "/health"


def test_the_dockerfile_sets_known_variables_and_builds_from_its_base_argument():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE$", text, re.M) and re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M)
    assert "<<" not in text and "--mount" not in text, "the classic builder has no heredocs or cache mounts"
    names = set(re.findall(r"\b(AGENTVINE_[A-Z_]+)=", text))
    assert names and names <= KNOWN, names - KNOWN
    assert "EXPOSE 8080" in text
