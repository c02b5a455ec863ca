import pytest

from app.domain.config import ConfigError, deep_merge, load_default, merge_repo_config, permission_at_least


def test_defaults_map_every_worker_and_level():
    config = load_default()
    assert {rule.worker for rule in config.labels.values()} == {"feature", "bugfix", "test", "docs", "refactor", "review"}
    assert {rule.level for rule in config.labels.values()} == {"autonomous", "supervised", "human-required"}
    assert config.command_prefix == "/agentvine"
    assert config.permissions.trigger == "write"
    for worker in config.workers:
        assert "{issue_title}" in config.prompt_template(worker)


def test_repository_file_deep_merges_and_null_removes():
    config = merge_repo_config(
        "workers:\n  bugfix:\n    max_turns: 5\nlabels:\n  'agentvine:docs': null\n  'agentvine:hotfix': {worker: bugfix, level: autonomous}\n"
    )
    assert config.workers["bugfix"].max_turns == 5
    assert config.workers["bugfix"].model == load_default().workers["bugfix"].model  # untouched sibling keys
    assert "agentvine:docs" not in config.labels
    assert config.labels["agentvine:hotfix"].level == "autonomous"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("workers: {bugfix: {max_turns: lots}}", "workers.bugfix.max_turns: Input should be a valid integer"),
        ("workers: {bugfix: {max_turnz: 3}}", "workers.bugfix.max_turnz: Extra inputs are not permitted"),
        ("labels: {bug: {worker: bugfix, level: supervised}}", "labels: label 'bug' must start with 'agentvine:'"),
        ("labels: {'agentvine:x': {worker: wizard, level: supervised}}", "labels.agentvine:x.worker: Input should be"),
        ("permissions: {trigger: root}", "permissions.trigger: Input should be"),
        ("a: &x [1]\nb: *x", "line 2, column 4: invalid YAML: aliases (*name) are not allowed"),
        ("workers: [1", "line 1, column 12: invalid YAML"),
        ("- just\n- a list", "the top level must be a mapping"),
        ("command_prefix: /other", "command_prefix: can only be set by the AgentVine service"),
        ("x: '" + "a" * 70_000 + "'", "file is larger than 64 KiB"),
        ("review: {request_changes_on: blocker}", "review.request_changes_on: Input should be 'never', 'critical'"),
        ("review: {on_push: sometimes}", "review.on_push: Input should be a valid boolean"),
        ("review: {approve: true}", "review.approve: Extra inputs are not permitted"),
    ],
)
def test_invalid_repository_files_name_the_key_and_problem(text, expected):
    with pytest.raises(ConfigError) as info:
        merge_repo_config(text)
    assert info.value.source == ".github/agentvine.yml"
    assert any(p.startswith(expected) for p in info.value.problems), info.value.problems


def test_reviews_comment_and_follow_no_push_unless_a_repository_asks():
    assert (load_default().review.on_push, load_default().review.request_changes_on) == (False, "never")
    config = merge_repo_config("review:\n  on_push: true\n  request_changes_on: major\n")
    assert (config.review.on_push, config.review.request_changes_on) == (True, "major")
    assert merge_repo_config("review: {on_push: true}").review.request_changes_on == "never"  # a sibling stays


def test_empty_file_means_defaults():
    assert merge_repo_config("") == load_default()


def test_deep_merge_does_not_mutate_its_inputs():
    base = {"a": {"b": 1}}
    deep_merge(base, {"a": {"c": 2}})
    assert base == {"a": {"b": 1}}


def test_permission_order():
    assert permission_at_least("admin", "write")
    assert permission_at_least("maintain", "maintain")
    assert not permission_at_least("triage", "write")
    assert not permission_at_least(None, "read")
    assert not permission_at_least("bogus", "read")


@pytest.mark.parametrize("env, value", [("workspace_disk", "tmpfs"), ("git_user", "nobody"), ("git_user", "0:")])
def test_service_settings_of_the_workspace_are_validated_at_start(env, value):
    from pydantic import ValidationError

    from app.settings import Settings

    with pytest.raises(ValidationError, match=env):
        Settings(**{env: value})


@pytest.mark.parametrize(
    "text",
    [
        "[" * 10_000 + "]" * 10_000,  # flow sequences
        "a: " + "{a: " * 5_000 + "1" + "}" * 5_000,  # flow mappings
        "- " * 10_000 + "x",  # block sequences on one line
        "".join(" " * depth + "a:\n" for depth in range(355)),  # block mappings (63,900 bytes)
    ],
    ids=["lists", "mappings", "block-lists", "block-mappings"],
)
def test_deeply_nested_yaml_is_a_config_error_not_a_recursion_error(text):
    with pytest.raises(ConfigError) as info:
        merge_repo_config(text)
    (problem,) = info.value.problems
    assert "invalid YAML: nested more than 32 levels deep" in problem, problem
    assert problem.startswith("line ")


def test_the_size_limit_applies_before_the_depth_is_looked_at():
    with pytest.raises(ConfigError) as info:
        merge_repo_config("[" * 40_000 + "]" * 40_000)
    assert info.value.problems == ["file is larger than 64 KiB"]


def test_nesting_within_the_depth_limit_is_validated_as_usual():
    with pytest.raises(ConfigError) as info:
        merge_repo_config("extra: " + "[" * 30 + "]" * 30)
    assert info.value.problems == ["extra: Extra inputs are not permitted"]


def test_follow_ci_defaults_to_autonomous_work_and_two_rounds():
    follow_ci = load_default().follow_ci
    assert (follow_ci.when, follow_ci.max_rounds) == ("autonomous", 2)
    assert follow_ci.covers("autonomous") and not follow_ci.covers("supervised")


@pytest.mark.parametrize(("text", "when", "rounds"), [
    ("follow_ci: true", "always", 2),  # the shorthand keeps the default rounds
    ("follow_ci: false", "never", 2),
    ("follow_ci: {max_rounds: 5}", "autonomous", 5),
    ("follow_ci: {when: always, max_rounds: 1}", "always", 1),
])
def test_follow_ci_takes_a_shorthand_or_a_mapping(text, when, rounds):
    follow_ci = merge_repo_config(text).follow_ci
    assert (follow_ci.when, follow_ci.max_rounds) == (when, rounds)
    assert follow_ci.covers("human-required") is (when == "always")


@pytest.mark.parametrize(("text", "expected"), [
    ("follow_ci: sometimes", "follow_ci: must be true, false, or a mapping with `when` and `max_rounds`"),
    ("follow_ci: {when: maybe}", "follow_ci.when: Input should be 'autonomous', 'always' or 'never'"),
    ("follow_ci: {max_rounds: 0}", "follow_ci.max_rounds: Input should be greater than or equal to 1"),
    ("follow_ci: {max_rounds: 11}", "follow_ci.max_rounds: Input should be less than or equal to 10"),
    ("follow_ci: {rounds: 3}", "follow_ci.rounds: Extra inputs are not permitted"),
])
def test_a_bad_follow_ci_names_the_key(text, expected):
    with pytest.raises(ConfigError) as raised:
        merge_repo_config(text)
    assert raised.value.problems == [expected]
