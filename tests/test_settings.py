"""The settings file (`agentvine setup` writes it, `serve` reads it): private or refused, and the
environment wins over it."""

from __future__ import annotations

import os

import pytest

from app.settings import SettingsFileError, format_settings, load_settings, other_settings, write_private_file

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


@pytest.mark.usefixtures("needs_root")  # only root can give a file to another user
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


# --- writing it (`agentvine setup`) -----------------------------------------------------------------


def test_what_setup_writes_reads_back_exactly(tmp_path):
    values = {"AGENTVINE_APP_ID": "42", "AGENTVINE_PRIVATE_KEY": PEM, "AGENTVINE_WEBHOOK_SECRET": 'a"b\\c $HOME \'d',
              "AGENTVINE_PUBLIC_URL": "https://av.example.com"}
    env = tmp_path / "agentvine.env"
    write_private_file(env, format_settings(values, "a header\nof two lines"), replace=False)
    assert env.read_text().startswith("# a header\n# of two lines\n")
    settings = load_settings({"AGENTVINE_ENV_FILE": str(env)})
    assert settings.app_credentials() == (42, PEM)
    assert settings.webhook_secret.get_secret_value() == 'a"b\\c $HOME \'d'


def test_a_value_the_file_would_change_is_refused():
    with pytest.raises(ValueError, match="cannot carry"):
        format_settings({"AGENTVINE_WEBHOOK_SECRET": "x${HOME}"})  # python-dotenv would expand it


def test_the_file_is_private_before_it_has_its_name_and_never_replaces_one_without_being_told(tmp_path, monkeypatch):
    env = tmp_path / "agentvine.env"
    seen = []
    real_link = os.link

    def link(source, target):
        seen.append(os.stat(source).st_mode & 0o777)
        real_link(source, target)

    monkeypatch.setattr(os, "link", link)
    old_umask = os.umask(0)
    try:
        write_private_file(env, "A=1\n", replace=False)
    finally:
        os.umask(old_umask)
    assert seen == [0o600] and env.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        write_private_file(env, "A=2\n", replace=False)
    dangling = tmp_path / "dangling.env"
    dangling.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FileExistsError):
        write_private_file(dangling, "A=2\n", replace=False)
    assert env.read_text() == "A=1\n" and not (tmp_path / "elsewhere").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agentvine.env", "dangling.env"]  # no temporary left


def test_replacing_a_symlink_replaces_the_link_not_what_it_points_at(tmp_path):
    target = write_env(tmp_path / "target", "KEEP=1\n")
    link = tmp_path / "agentvine.env"
    link.symlink_to(target)
    write_private_file(link, "A=1\n", replace=True)
    assert not link.is_symlink() and link.read_text() == "A=1\n" and target.read_text() == "KEEP=1\n"


def test_the_other_lines_of_a_file_are_kept_verbatim(tmp_path):
    env = write_env(tmp_path / "agentvine.env", '# mine\nAGENTVINE_APP_ID=1\nexport X="a\nb"\nAGENTVINE_PRIVATE_KEY="k"\nY=2')
    assert other_settings(env, {"AGENTVINE_APP_ID", "AGENTVINE_PRIVATE_KEY"}) == '# mine\nexport X="a\nb"\nY=2\n'


def test_allowed_images_are_comma_separated_and_a_profile_names_its_image(monkeypatch):
    from app.agent.sandbox.recipe import PROFILE_IMAGES
    from app.settings import Settings

    monkeypatch.setenv("AGENTVINE_ALLOWED_IMAGES", " team/*, registry.example.com/dev:1 ,")
    monkeypatch.setenv("AGENTVINE_SANDBOX_IMAGE", "base")
    settings = Settings()
    assert settings.allowed_images == ("team/*", "registry.example.com/dev:1")
    assert settings.ceilings.allowed_images == settings.allowed_images
    assert settings.sandbox_image == PROFILE_IMAGES["base"]
    assert settings.image_for("default") == settings.image_for(None) == PROFILE_IMAGES["base"]
    assert settings.image_for("full") == PROFILE_IMAGES["full"] and settings.image_for("team/x:1") == "team/x:1"
