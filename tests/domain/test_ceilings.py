"""The operator's ceilings: a repository's .github/agentvine.yml may narrow every limit, never widen
one past what the operator allows (AGENTVINE_MAX_*, AGENTVINE_ALLOWED_MODELS, AGENTVINE_MIN_*)."""

import pytest

from app.domain.config import Ceilings, ConfigError, load_default, merge_repo_config


def problems(text: str, ceilings: Ceilings | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        merge_repo_config(text, ceilings=ceilings or Ceilings())
    assert info.value.source == ".github/agentvine.yml"
    return info.value.problems


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("permissions: {trigger: read}",
         "permissions.trigger: read is below the operator's floor of write (AGENTVINE_MIN_TRIGGER_PERMISSION)"),
        ("permissions: {approve: triage}",
         "permissions.approve: triage is below the operator's floor of write (AGENTVINE_MIN_APPROVE_PERMISSION)"),
        ("sandbox: {memory: 64g}", "sandbox.memory: 64g is above the operator's ceiling of 4g (AGENTVINE_MAX_MEMORY)"),
        ("sandbox: {memory: 999999999m}", "sandbox.memory: 999999999m is above the operator's ceiling of 4g"),
        ("sandbox: {cpus: 16}", "sandbox.cpus: 16 is above the operator's ceiling of 2 (AGENTVINE_MAX_CPUS)"),
        ("sandbox: {pids: 65536}", "sandbox.pids: 65536 is above the operator's ceiling of 1024 (AGENTVINE_MAX_PIDS)"),
        ("workers: {feature: {timeout_minutes: 360}}",
         "workers.feature.timeout_minutes: 360 is above the operator's ceiling of 60 (AGENTVINE_MAX_MINUTES)"),
        ("workers: {bugfix: {max_turns: 500}}",
         "workers.bugfix.max_turns: 500 is above the operator's ceiling of 100 (AGENTVINE_MAX_TURNS)"),
        ("workers: {docs: {max_cost_usd: 1000}}",
         "workers.docs.max_cost_usd: 1000 is above the operator's ceiling of 10 (AGENTVINE_MAX_COST_USD)"),
        ("workers: {review: {model: claude-unheard-of}}",
         "workers.review.model: claude-unheard-of is not one of the operator's allowed models"),
        ("seniority: {'agentvine:principal': {model: some-other-model}}",
         "seniority.agentvine:principal.model: some-other-model is not one of the operator's allowed models"),
        ("seniority: {'agentvine:staff': {model: some-other-model}}",
         "seniority.agentvine:staff.model: some-other-model is not one of the operator's allowed models"),
        ("questions: {expire_hours: 720}",
         "questions.expire_hours: 720 is above the operator's ceiling of 168 (AGENTVINE_MAX_QUESTION_HOURS)"),
        ("workspace: {max_size_mb: 1000000}",
         "workspace.max_size_mb: 1000000 is above the operator's ceiling of 8192 (AGENTVINE_MAX_WORKSPACE_MB)"),
        ("workspace: {max_files: 100000000}",
         "workspace.max_files: 100000000 is above the operator's ceiling of 200000 (AGENTVINE_MAX_WORKSPACE_FILES)"),
        ("workspace: {max_changed_files: 1000000}",
         "workspace.max_changed_files: 1000000 is above the operator's ceiling of 5000 (AGENTVINE_MAX_CHANGED_FILES)"),
    ],
)
def test_a_value_beyond_a_default_ceiling_is_a_config_error_naming_the_setting(text, expected):
    assert any(p.startswith(expected) for p in problems(text)), problems(text)


def test_without_ceilings_given_the_default_ceilings_apply():
    with pytest.raises(ConfigError, match="AGENTVINE_MAX_CPUS"):
        merge_repo_config("sandbox: {cpus: 16}")


def test_the_model_message_names_the_allowed_models_and_the_setting():
    (problem,) = problems("workers: {feature: {model: x}}", Ceilings(allowed_models=("claude-*", "y")))
    assert problem == "workers.feature.model: x is not one of the operator's allowed models (claude-*, y; AGENTVINE_ALLOWED_MODELS)"


def test_every_value_beyond_a_ceiling_is_named_at_once():
    found = problems("permissions: {trigger: read}\nsandbox: {memory: 64g, cpus: 16}\n"
                     "workers: {feature: {max_turns: 500}, bugfix: {max_turns: 500}}\n")
    assert [p.split(":")[0] for p in found] == [
        "permissions.trigger", "sandbox.memory", "sandbox.cpus", "workers.feature.max_turns", "workers.bugfix.max_turns"]


def test_the_ceiling_is_the_operators():
    ceilings = Ceilings(max_memory="8g", max_cpus=1)
    assert problems("sandbox: {memory: 9g}", ceilings) == [
        "sandbox.memory: 9g is above the operator's ceiling of 8g (AGENTVINE_MAX_MEMORY)"]
    assert problems("sandbox: {cpus: 1.5}", ceilings) == [
        "sandbox.cpus: 1.5 is above the operator's ceiling of 1 (AGENTVINE_MAX_CPUS)"]
    raised = Ceilings(max_memory="64g", max_cpus=16, allowed_models=("claude-*",), min_trigger_permission="read")
    config = merge_repo_config("permissions: {trigger: read}\nsandbox: {memory: 64g, cpus: 16}\n"
                               "workers: {feature: {model: claude-future-9}}\n", ceilings=raised)
    assert (config.permissions.trigger, config.sandbox.memory, config.workers["feature"].model) == (
        "read", "64g", "claude-future-9")


def test_values_at_a_ceiling_or_within_it_are_accepted_unchanged():
    text = ("permissions: {trigger: write, approve: write}\n"
            "sandbox: {memory: 4096m, cpus: 2, pids: 1024}\n"
            "workers: {feature: {max_turns: 100, timeout_minutes: 60, max_cost_usd: 10, model: claude-opus-4-1}}\n"
            "questions: {expire_hours: 168}\n"
            "workspace: {max_size_mb: 8192, max_files: 200000, max_file_mb: 100, max_changed_files: 5000}\n")
    config = merge_repo_config(text, ceilings=Ceilings())
    assert config.sandbox.memory == "4096m" and config.workers["feature"].max_turns == 100


def test_a_stricter_repository_is_never_refused():
    config = merge_repo_config("permissions: {trigger: admin}\nsandbox: {memory: 512m, cpus: 0.5}\n",
                               ceilings=Ceilings())
    assert config.permissions.trigger == "admin" and config.sandbox.cpus == 0.5


def test_the_shipped_defaults_fit_within_the_default_ceilings():
    assert Ceilings().problems(load_default()) == []


@pytest.mark.parametrize(("field", "value"), [("max_memory", "lots"), ("max_cpus", 0), ("min_trigger_permission", "none"),
                                              ("allowed_models", ())])
def test_a_ceiling_that_makes_no_sense_is_refused(field, value):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=field):
        Ceilings(**{field: value})


def test_the_settings_carry_the_ceilings_from_the_environment(monkeypatch):
    from app.settings import Settings

    assert Settings().ceilings == Ceilings()
    monkeypatch.setenv("AGENTVINE_MAX_MEMORY", "16g")
    monkeypatch.setenv("AGENTVINE_MAX_COST_USD", "2.5")
    monkeypatch.setenv("AGENTVINE_ALLOWED_MODELS", "claude-sonnet-4-5, claude-haiku-*")
    monkeypatch.setenv("AGENTVINE_MIN_TRIGGER_PERMISSION", "maintain")
    ceilings = Settings().ceilings
    assert (ceilings.max_memory, ceilings.max_cost_usd, ceilings.allowed_models, ceilings.min_trigger_permission) == (
        "16g", 2.5, ("claude-sonnet-4-5", "claude-haiku-*"), "maintain")


@pytest.mark.parametrize(("env", "value"), [("max_memory", "8 GB"), ("min_trigger_permission", "none"),
                                            ("allowed_models", ""), ("max_turns", "0")])
def test_a_ceiling_setting_that_makes_no_sense_is_refused_at_start(monkeypatch, env, value):
    from pydantic import ValidationError

    from app.settings import Settings

    monkeypatch.setenv(f"AGENTVINE_{env.upper()}", value)
    with pytest.raises(ValidationError, match=env):
        Settings()


@pytest.mark.parametrize("name", ["default", "base", "full"])
def test_a_profile_or_the_operators_image_needs_no_allowance(name):
    assert merge_repo_config(f"sandbox: {{image: {name}}}").sandbox.image == name


def test_another_image_must_be_one_the_operator_allows():
    (problem,) = problems("sandbox: {image: 'team/dev:1'}")
    assert problem == ("sandbox.image: team/dev:1 is neither a profile (base, full) nor one of the operator's "
                       "allowed images (none; AGENTVINE_ALLOWED_IMAGES)")
    ceilings = Ceilings(allowed_images=("registry.example.com:5000/team/*", "dev:1"))
    assert merge_repo_config("sandbox: {image: 'registry.example.com:5000/team/py:3.11'}", ceilings=ceilings)
    assert merge_repo_config("sandbox: {image: 'dev:1'}", ceilings=ceilings)
    (problem,) = problems("sandbox: {image: 'dev:2'}", ceilings)
    assert "(registry.example.com:5000/team/*, dev:1; AGENTVINE_ALLOWED_IMAGES)" in problem


@pytest.mark.parametrize("image", ["Team/Dev", "dev:", "-rm", "a b", "dev@sha256:abc", "x" * 300, "", "dev:1;rm"])
def test_a_malformed_image_reference_is_a_config_error(image):
    ceilings = Ceilings(allowed_images=("*",))
    (problem,) = problems(f"sandbox: {{image: '{image}'}}", ceilings)
    assert problem.startswith("sandbox.image: ")
