"""The settings file (`agentvine setup` writes it, `serve` reads it): private or refused, and the
environment wins over it."""

from __future__ import annotations

import os

import pytest

from app.settings import SettingsFileError, load_settings

PEM = "-----BEGIN PRIVATE KEY-----\nMIIB\nAAAA\n-----END PRIVATE KEY-----\n"


def write_env(path, text: str, mode: int = 0o600):
    path.write_text(text)
    path.chmod(mode)
    return path


def test_the_settings_file_gives_id_key_and_secret_and_the_environment_wins(tmp_path, monkeypatch):
    pem = PEM.replace("\n", "\\n")
    env = write_env(tmp_path / "agentvine.env",
                    f'AGENTVINE_APP_ID=42\nAGENTVINE_PRIVATE_KEY="{pem}"\nAGENTVINE_WEBHOOK_SECRET=s3cret\n'
                    "AGENTVINE_MAX_JOBS_PER_REPO=2\n")
    monkeypatch.setenv("AGENTVINE_MAX_JOBS_PER_REPO", "3")
    settings = load_settings({"AGENTVINE_ENV_FILE": str(env)})
    assert settings.app_credentials() == (42, PEM)
    assert settings.webhook_secret.get_secret_value() == "s3cret"
    assert settings.max_jobs_per_repo == 3


def test_the_default_file_in_the_current_folder_is_read_only_when_it_exists(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGENTVINE_APP_ID", raising=False)
    assert load_settings({}).app_id is None
    write_env(tmp_path / "agentvine.env", "AGENTVINE_APP_ID=7\n")
    assert load_settings({}).app_id == 7


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620])
def test_a_settings_file_others_may_read_or_write_is_refused_with_the_fix(tmp_path, mode):
    env = write_env(tmp_path / "agentvine.env", "AGENTVINE_APP_ID=1\n", mode)
    with pytest.raises(SettingsFileError, match=f"mode {mode:03o}.*chmod 600 {env}"):
        load_settings({"AGENTVINE_ENV_FILE": str(env)})


def test_a_symlinked_or_missing_settings_file_is_refused(tmp_path):
    target = write_env(tmp_path / "real.env", "AGENTVINE_APP_ID=1\n")
    link = tmp_path / "link.env"
    link.symlink_to(target)
    with pytest.raises(SettingsFileError, match="not a regular file"):
        load_settings({"AGENTVINE_ENV_FILE": str(link)})
    with pytest.raises(SettingsFileError, match="does not exist"):
        load_settings({"AGENTVINE_ENV_FILE": str(tmp_path / "nowhere.env")})


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_a_settings_file_of_another_user_is_refused(tmp_path):
    env = write_env(tmp_path / "agentvine.env", "AGENTVINE_APP_ID=1\n")
    os.chown(env, 65534, 65534)
    with pytest.raises(SettingsFileError, match="belongs to uid 65534"):
        load_settings({"AGENTVINE_ENV_FILE": str(env)})


def test_serve_refuses_a_loose_settings_file_without_a_traceback(tmp_path, monkeypatch, capsys):
    from app.cli import main

    env = write_env(tmp_path / "agentvine.env", "AGENTVINE_APP_ID=1\n", 0o644)
    monkeypatch.setenv("AGENTVINE_ENV_FILE", str(env))
    assert main(["serve", "--port", "9"]) == 2
    err = capsys.readouterr().err
    assert "the settings file cannot be used" in err and "chmod 600" in err and "Traceback" not in err
