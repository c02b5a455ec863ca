"""The host side of the workspace boundary without a container: the checkout the host writes, the
agent's tree read back as data (here changed by the test, as the agent would), the path rules,
and the commit built with fast-import in the host's repository."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from app.agent.boundary import changeset, workspace
from app.agent.boundary.changeset import Rules, canonical, rule_refusal, symlink_refusal
from app.agent.boundary.hostgit import GitUser
from app.agent.boundary.workspace import SYMLINK as SYMLINK_MODE
from app.agent.sandbox.disk import JobDisk, loop_supported, remove_tree
from app.domain.job import JobState
from tests.support.harness import INSTALLATION
from tests.support.env import reachable_by_host_git, unavailable

REPO = "octo-org/unit"
RULES = Rules(allowed_paths=["**"], allow_workflows=False, max_file_mb=1, max_changed_files=50)
FILES = {
    "README.md": "# unit\n",
    "src/app.py": "print('app')\n",
    "run.sh": ("100755", "echo run\n"),
    "docs/link.md": ("120000", "../README.md"),
    "sub": ("160000", "1234567890abcdef1234567890abcdef12345678"),
    ".gitmodules": '[submodule "sub"]\n\tpath = sub\n\turl = https://example.invalid/sub.git\n',
    ".gitignore": "node_modules/\n*.log\nbuild\n",
    "keep.log": "tracked although ignored\n",
}


@contextlib.asynccontextmanager
async def checkout(github, tmp_path: Path, repo: str, files: dict | None = None):
    """A job's workspace on a checkout of `repo` (added with `files` when given), in a plain folder."""
    if files is not None:
        github.add_repo(repo, installation_id=INSTALLATION, files=files)
    root = reachable_by_host_git(tmp_path) / "jobs" / repo.replace("/", "-")
    root.parent.mkdir(exist_ok=True)
    ws = workspace.Workspace(JobDisk(root, "dir", 64, 1000), f"agentvine/{repo.split('/')[1]}", GitUser.parse(None))
    token = github.tokens.issue(INSTALLATION, {"contents": "write"}, None).token
    await workspace.prepare(ws, f"{github.url}/{repo}.git", "main", token)
    try:
        yield ws
    finally:
        workspace.discard(ws.disk)


@pytest.fixture
async def ws(github, tmp_path) -> workspace.Workspace:
    async with checkout(github, tmp_path, REPO, FILES) as ws:
        yield ws


def changes(ws, rules: Rules = RULES) -> changeset.ChangeSet:
    return changeset.read_changes(ws, rules)


def tree(github, ref: str) -> dict[str, tuple[str, bytes]]:
    git = github.repo(REPO).git
    out = {}
    for item in filter(None, git.git("ls-tree", "-r", "-z", "--full-tree", ref).split(b"\0")):
        meta, path = item.split(b"\t", 1)
        mode, kind, sha = meta.decode().split()
        out[path.decode()] = (mode, git.git("cat-file", "blob", sha) if kind == "blob" else sha.encode())
    return out


# --- the checkout -----------------------------------------------------------------------------

async def test_checkout_is_byte_exact_and_the_host_repository_is_apart(ws):
    assert (ws.path / "src/app.py").read_text() == "print('app')\n"
    assert os.stat(ws.path / "run.sh").st_mode & 0o111
    assert os.readlink(ws.path / "docs/link.md") == "../README.md"
    assert (ws.path / "sub").is_dir() and not any((ws.path / "sub").iterdir())
    assert os.lstat(ws.path / "README.md").st_uid == 1000
    # The agent gets a .git of its own on the job branch; the host's repository is elsewhere.
    assert (ws.path / ".git/HEAD").read_text().strip() == "ref: refs/heads/agentvine/unit"
    assert not ws.git_dir.is_relative_to(ws.path)
    assert changes(ws).changes == [] and changes(ws).refused == []


@pytest.mark.usefixtures("needs_root")  # the git user is only switched when running as root
async def test_host_git_runs_as_the_unprivileged_git_user(ws):
    assert ws.git_user.uid == 65534
    owners = {os.lstat(os.path.join(d, n)).st_uid for d, _, names in os.walk(ws.git_dir) for n in names}
    assert owners == {65534}
    assert os.stat(ws.git_dir).st_mode & 0o077 == 0


# --- reading the agent's tree -------------------------------------------------------------------

async def test_touched_files_are_not_changes_and_a_mode_change_is(ws):
    os.utime(ws.path / "README.md")
    (ws.path / "src/app.py").write_text("print('app')\n")  # rewritten, same bytes
    os.chmod(ws.path / "README.md", 0o755)
    assert [(c.path, c.mode) for c in changes(ws).changes] == [("README.md", "100755")]


async def test_gitignore_decides_for_new_files_only(ws):
    (ws.path / "node_modules/pkg").mkdir(parents=True)
    (ws.path / "node_modules/pkg/index.js").write_text("x")
    os.mkdir(ws.path / "node_modules/pkg/.git")  # a git checkout inside an ignored folder
    os.mkfifo(ws.path / "node_modules/pkg/sock")
    (ws.path / "debug.log").write_text("noise")
    (ws.path / "keep.log").write_text("changed\n")  # tracked: still a change
    (ws.path / "src/build").write_text("a file named like an ignored directory pattern")
    (ws.path / "src/.gitignore").write_text("*.tmp\n")
    (ws.path / "src/x.tmp").write_text("ignored by the nested .gitignore")
    result = changes(ws)
    assert result.refused == []
    assert result.paths == ["keep.log", "src/.gitignore"]


async def test_deletions_renames_and_file_to_directory(ws):
    os.remove(ws.path / "README.md")
    os.rename(ws.path / "run.sh", ws.path / "tools.sh")
    os.remove(ws.path / "src/app.py")
    os.rmdir(ws.path / "src")
    (ws.path / "src").write_text("src is a file now\n")
    result = changes(ws)
    assert {(c.path, c.mode) for c in result.changes} == {
        ("README.md", None), ("run.sh", None), ("tools.sh", "100755"), ("src/app.py", None), ("src", "100644")}


async def test_a_removed_submodule_directory_keeps_the_gitlink(ws):
    os.rmdir(ws.path / "sub")
    assert changes(ws).changes == []


@pytest.mark.parametrize("attack, refused", [
    (lambda p: os.symlink("/etc", p / "etc"), ("etc", "a symlink pointing outside the repository (`/etc`)")),
    (lambda p: (os.remove(p / "docs/link.md"), os.rmdir(p / "docs"), os.symlink("/etc", p / "docs")),
     ("docs", "a symlink pointing outside the repository (`/etc`)")),
    (lambda p: os.link(p / "README.md", p / "copy.md"), ("copy.md", "a hard link (commit a copy, or a symlink)")),
    (lambda p: os.mkfifo(p / "fifo"), ("fifo", "a FIFO")),
    (lambda p: (p / "sub/file").write_text("x"), ("sub", "files inside a submodule's directory (submodules are not changed by agents)")),
    (lambda p: (os.rmdir(p / "sub"), (p / "sub").write_text("x")), ("sub", "replaces a submodule (submodules are not changed by agents)")),
    (lambda p: os.makedirs(p / "deep/.GIT"), ("deep/.GIT", "a `.git` below the top level")),
    (lambda p: os.truncate(os.open(p / "big", os.O_CREAT | os.O_WRONLY), 2 * 1024 * 1024),
     ("big", "2 MB, larger than workspace.max_file_mb (1 MB)")),
    (lambda p: os.symlink("../.git/config", p / "docs/cfg"), ("docs/cfg", "a symlink into git metadata (`../.git/config`)")),
    (lambda p: (p / ".gitmodules").write_text(""), (".gitmodules", "submodule configuration (.gitmodules) is not changed by agents")),
])
async def test_what_may_not_be_committed_is_refused_with_its_path(ws, attack, refused):
    attack(ws.path)
    assert refused in changes(ws).refused


async def test_a_non_utf8_name_is_refused(ws):
    os.close(os.open(os.fsencode(ws.path) + b"/bad\xff", os.O_CREAT | os.O_WRONLY))
    assert ("bad\udcff", "a name that is not UTF-8") in changes(ws).refused


async def test_too_many_changed_files(ws):
    for i in range(51):
        (ws.path / f"f{i}.txt").write_text(str(i))
    (refused,) = changes(ws).refused
    assert refused == ("51 files", "more changed files than workspace.max_changed_files (50)")


async def test_the_agents_own_git_dir_is_never_read(ws):
    (ws.path / ".git/config").write_text("[core]\n\tfsmonitor = sh -c 'touch /tmp/never'\n")
    os.mkfifo(ws.path / ".git/fifo")
    assert changes(ws).changes == [] and changes(ws).refused == []


# --- the commit ---------------------------------------------------------------------------------

async def test_commit_writes_exactly_what_was_read_and_pushes(ws, github):
    odd = 'we"ird\\ name\nwith newline ü.txt'
    (ws.path / odd).write_bytes(b"\x00\xffodd")
    (ws.path / "src/app.py").write_text("print('changed')\n")
    os.symlink("src/app.py", ws.path / "app-link")
    os.remove(ws.path / "keep.log")
    result = changes(ws)
    assert result.refused == []
    sha = changeset.commit(ws, result, "agent work\n\nbody\n", author_name="agentvine[bot]", author_email="bot@x")
    token = github.tokens.issue(INSTALLATION, {"contents": "write"}, None).token
    await workspace.push(ws, sha, token, expected_remote=None)
    pushed = tree(github, "agentvine/unit")
    assert pushed[odd] == ("100644", b"\x00\xffodd")
    assert pushed["src/app.py"] == ("100644", b"print('changed')\n")
    assert pushed["app-link"] == ("120000", b"src/app.py")
    assert "keep.log" not in pushed
    assert pushed["sub"] == FILES["sub"][0:1] + (FILES["sub"][1].encode(),)
    assert pushed["run.sh"][0] == "100755" and pushed["docs/link.md"] == ("120000", b"../README.md")
    log = github.repo(REPO).git.git("log", "-1", "--format=%an|%B", "agentvine/unit").decode()
    assert log.startswith("agentvine[bot]|agent work\n\nbody")


# --- path rules ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    ".github/workflows/ci.yml", ".GitHub/Workflows/ci.yml", ".github/workflows./ci.yml", ".github /workflows/ci.yml",
    "\uff0egithub/workflows/ci.yml", ".git\u200chub/workflows/ci.yml", ".github/\u200dworkflows/ci.yml",
    ".github/workflows",
])
def test_paths_that_normalise_into_workflows_are_protected(path):
    assert "workflows" in rule_refusal(path, RULES)
    assert rule_refusal(path, Rules(["**"], True, 1, 1)) is None


@pytest.mark.parametrize("path", [
    ".github/actions/setup/action.yml", ".GitHub/Actions/setup/action.yaml", ".github/actions", ".github/actions/x",
])
def test_local_actions_are_protected_like_workflows(path):
    """`uses: ./.github/actions/x` runs that code in CI with the repository's secrets."""
    assert ".github/actions/" in rule_refusal(path, RULES)
    assert rule_refusal(path, RULES, SYMLINK_MODE) is not None
    assert ".github/actions/" in rule_refusal(".github/actions", RULES, SYMLINK_MODE)


def test_actions_may_change_where_workflow_changes_are_allowed():
    allowed = Rules(allowed_paths=["**"], allow_workflows=True, max_file_mb=1, max_changed_files=50)
    assert rule_refusal(".github/actions/setup/action.yml", allowed) is None


@pytest.mark.parametrize("path", ["a/.git/config", "a/.GIT/x", "a/git~1/x", "a/.git./x"])
def test_git_metadata_paths_are_protected(path):
    assert rule_refusal(path, Rules(["**"], True, 1, 1)) == "git metadata"


def test_allowed_paths_still_apply():
    docs = Rules(["**/*.md"], False, 1, 1)
    assert rule_refusal("README.md", docs) is None and rule_refusal("docs/x/y.md", docs) is None
    assert rule_refusal("app.py", docs).startswith("outside the worker's allowed paths")


@pytest.mark.parametrize("path, target, ok", [
    ("link", "README.md", True), ("docs/l", "../README.md", True), ("a/b/l", "../../c", True),
    ("link", "/etc/passwd", False), ("link", "..", False), ("docs/l", "../../x", False), ("l", "a/../../x", False),
    ("l", "", False), ("l", ".git/hooks/pre-commit", False), ("l", "x/.GIT/config", False),
])
def test_symlink_targets(path, target, ok):
    assert (symlink_refusal(path, target.encode()) is None) is ok


def test_canonical_form():
    assert canonical("\uff0eGitHub/Work\u200bflows./x.YML") == ".github/workflows/x.yml"


def test_the_job_filesystem_enforces_its_quota_and_goes_with_its_image(tmp_path):
    if not loop_supported():
        unavailable("the job filesystem needs root, /dev/loop-control and mkfs.ext4")
    disk = JobDisk(tmp_path / "job", "loop", max_size_mb=64, max_files=500)
    disk.create()
    try:
        assert disk.mounted() and disk.over_quota() is None
        (options,) = [line.split()[3].split(",") for line in open("/proc/mounts") if line.split()[1] == str(disk.mountpoint)]
        assert {"nosuid", "nodev"} <= set(options)
        with pytest.raises(OSError, match="No space left"):
            with open(disk.mountpoint / "fill", "wb") as f:
                for _ in range(200):
                    f.write(b"\0" * (1 << 20))
                    f.flush()
                    os.fsync(f.fileno())
        assert "grew past 64 MB (workspace.max_size_mb)" in disk.over_quota()
        assert os.stat(disk.image).st_blocks * 512 < 200 * 1024 * 1024  # the host's disk paid no more
        os.remove(disk.mountpoint / "fill")
        with pytest.raises(OSError, match="No space left"):
            for i in range(3000):
                (disk.mountpoint / f"f{i}").touch()
        assert "more than 500 files (workspace.max_files)" in disk.over_quota()
        disk.unmount()
        assert not disk.mounted() and disk.over_quota() is None
        disk.mount()
        assert (disk.mountpoint / "f1").exists()  # a waiting job's files survive unmounting
    finally:
        disk.remove()
    assert not disk.image.exists() and not disk.mountpoint.exists()


@pytest.mark.parametrize("name, shown", [
    ("plain.py", "`plain.py`"),
    ("a`b", "`` a`b ``"),
    ("x`` @mona\n- [link](http://evil)", "``` x`` @\u200bmona\\x0a- [link](http://evil) ```"),
])
def test_file_names_are_shown_as_code_they_cannot_leave(name, shown):
    from app.domain.untrusted import code_span

    assert code_span(name) == shown


@contextlib.contextmanager
def jobs_with_files(tmp_path, *paths):
    """A worker over a store with one job per path of states (its last state is where it stands), each
    with a job filesystem, and one more filesystem no job owns ("ghost"). Yields (worker, jobs, disks)."""
    if not loop_supported():
        unavailable("the job filesystem needs root, /dev/loop-control and mkfs.ext4")
    from app.domain.config import load_default
    from app.domain.job import Delivery, Job, Trigger
    from app.engine.worker import Worker
    from app.store import SQLiteJobStore
    from tests.support.env import make_settings

    settings = make_settings(tmp_path, private_key="unused")
    settings.data_dir.mkdir(parents=True)
    store = SQLiteJobStore(settings.database_path)
    jobs = [Job(delivery_id="d1", installation_id=1, repo="o/r", issue_number=n, requester="alice",
                trigger=Trigger(kind="label", label="agentvine:bugfix")) for n in range(len(paths))]
    store.record_delivery(Delivery(id="d1", event="issues"), jobs)
    for job, path in zip(jobs, paths):
        for state in path:
            job = job.moved_to(state, "x")
        store.save_job(job, "moved")
    disks = {name: JobDisk(settings.jobs_dir / name, "loop", 64, 100) for name in [j.id for j in jobs] + ["ghost"]}
    try:
        for disk in disks.values():
            disk.create()
        yield Worker(settings, store, load_default()), jobs, disks
    finally:
        for disk in disks.values():
            disk.remove()
        store.close()


ASKED = (JobState.ACKNOWLEDGED, JobState.RUNNING, JobState.WAITING_FOR_ANSWER)


def test_start_up_removes_what_a_crash_left_and_keeps_a_waiting_jobs_files(tmp_path):
    with jobs_with_files(tmp_path, (JobState.CANCELLED,), ASKED) as (worker, (done, waiting), disks):
        worker._tidy_job_files()
        assert not disks[done.id].root.exists() and not disks["ghost"].root.exists()
        assert disks[waiting.id].image.is_file() and not disks[waiting.id].mounted()


def test_the_janitor_later_removes_leftovers_and_leaves_running_and_waiting_jobs_alone(tmp_path):
    started = (JobState.ACKNOWLEDGED, JobState.RUNNING)
    with jobs_with_files(tmp_path, (JobState.FAILED,), started, ASKED) as (worker, (done, running, waiting), disks):
        disks[running.id].mount()
        worker._tidy_job_files(at_start=False)  # e.g. the failed job's clean-up raised
        assert not disks[done.id].root.exists() and not disks["ghost"].root.exists()
        assert disks[running.id].mounted()  # a running job's filesystem is not pulled from under it
        assert disks[waiting.id].image.is_file()  # the session waits for its answer


async def test_a_tracked_non_utf8_name_is_no_change_but_a_new_one_is_refused(github, tmp_path):
    github.add_repo("octo-org/latin1", installation_id=INSTALLATION, files={"README.md": "x\n"})
    git = github.repo("octo-org/latin1").git
    blob = git.git("hash-object", "-w", "--stdin", input=b"old\n").decode().strip()
    tree = git.git("mktree", input=f"100644 blob {blob}\tmenu.txt\n".encode()).decode().strip()
    top = git.git("mktree", input=f"040000 tree {tree}\t".encode() + b"caf\xe9\n").decode().strip()
    git.git("update-ref", "refs/heads/main", git.git("commit-tree", top, "-m", "latin-1").decode().strip())
    async with checkout(github, tmp_path, "octo-org/latin1") as ws:
        assert changes(ws).changes == [] and changes(ws).refused == []
        os.close(os.open(os.fsencode(ws.path) + b"/caf\xe9/new.txt", os.O_CREAT | os.O_WRONLY))
        assert changes(ws).refused == [("caf\udce9/new.txt", "a name that is not UTF-8")]


# --- found by an attacker's review (2026-12-03) --------------------------------------------------

async def test_a_chain_of_symlinks_cannot_reach_outside(ws):
    os.makedirs(ws.path / "a")
    os.symlink("..", ws.path / "a/s")  # alone: the repository's top, harmless
    os.symlink("a/s/..", ws.path / "u1")  # through a/s, `..` leaves the repository
    os.symlink("u1/etc/passwd", ws.path / "leak")
    refused = dict(changes(ws).refused)
    assert refused["u1"] == "a symlink through another symlink (`a/s/..`)"
    assert refused["leak"] == "a symlink through another symlink (`u1/etc/passwd`)"
    assert "a/s" not in refused


async def test_names_that_look_like_pathspec_magic_are_plain_paths(ws):
    for name in (":(glob)x", ":!x", ":^x", ":(top,literal)x", ":build"):
        (ws.path / name).write_text("x")
    assert changes(ws).paths == [":!x", ":(glob)x", ":(top,literal)x", ":^x", ":build"]  # as `git status` lists them


async def test_replacing_a_submodules_parent_folder_is_refused(github, tmp_path):
    files = {"README.md": "x\n", "libs/sub": ("160000", "1234567890abcdef1234567890abcdef12345678")}
    async with checkout(github, tmp_path, "octo-org/nested", files) as ws:
        os.rmdir(ws.path / "libs/sub")
        os.rmdir(ws.path / "libs")
        (ws.path / "libs").write_text("x")
        assert ("libs", "replaces the folder of the submodule `libs/sub` (submodules are not changed by agents)") \
            in changes(ws).refused


async def test_touched_files_count_against_no_limit(ws):
    big = ws.path / "README.md"
    for path in ("src/app.py", "run.sh", "keep.log", ".gitignore"):
        os.utime(ws.path / path)
    os.utime(big)
    (ws.path / "new.txt").write_text("the one real change")
    result = changes(ws, Rules(["**"], False, max_file_mb=1, max_changed_files=1))
    assert result.refused == [] and result.paths == ["new.txt"]


async def test_a_path_longer_than_path_max_is_refused_without_entering_it(ws):
    fd = os.open(ws.path, os.O_RDONLY)
    try:
        for _ in range(20):
            os.mkdir("d" * 250, dir_fd=fd)
            nxt = os.open("d" * 250, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        os.close(os.open(".gitignore", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
    finally:
        os.close(fd)
    (reason,) = {why for _, why in changes(ws).refused}
    assert reason == "a path longer than 4096 bytes"


async def test_a_tree_too_deep_for_shutil_is_still_removed(ws):
    fd = os.open(ws.path, os.O_RDONLY)
    for _ in range(3000):
        os.mkdir("d", dir_fd=fd)
        nxt = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = nxt
    os.close(fd)
    assert [why for _, why in changes(ws).refused] == ["directories nested deeper than 200"]
    workspace.discard(ws.disk)
    assert not ws.root.exists()


async def test_a_tree_with_a_symlink_and_a_folder_of_the_same_name_is_not_checked_out(ws, tmp_path):
    import binascii

    from app.agent.boundary.hostgit import GitError, run_git

    outside = tmp_path / "outside"
    outside.mkdir()
    git = lambda *a, input=None: run_git(ws.git_dir, *a, user=ws.git_user, input=input).decode().strip()  # noqa: E731
    link = git("hash-object", "-w", "--stdin", input=str(outside).encode())
    sub = git("mktree", input=f"100644 blob {git('hash-object', '-w', '--stdin', input=b'pwned')}\tevil\n".encode())
    raw = b"120000 a\0" + binascii.unhexlify(link) + b"40000 a\0" + binascii.unhexlify(sub)
    top = git("hash-object", "-t", "tree", "-w", "--literally", "--stdin", input=raw)
    commit = git("-c", "user.name=a", "-c", "user.email=a@b", "commit-tree", top, "-m", "malformed")
    remove_tree(ws.disk.mountpoint)
    with pytest.raises(GitError, match="cannot be checked out safely"):
        workspace._materialize(ws, commit)
    assert list(outside.iterdir()) == []


def test_agent_text_with_a_lone_surrogate_still_commits(ws):
    (ws.path / "x.txt").write_text("x")
    assert changeset.commit(ws, changes(ws), "done \ud800", author_name="a", author_email="a@b")


async def test_a_symlink_in_place_of_github_is_refused(ws):
    os.makedirs(ws.path / "gh/workflows")
    (ws.path / "gh/workflows/evil.yml").write_text("on: push\n")
    os.symlink("gh", ws.path / ".github")
    os.makedirs(ws.path / "src/.github")
    os.symlink("../../gh/workflows", ws.path / "src/.github/workflows")
    refused = dict(changes(ws).refused)
    assert refused[".github"] == "a symlink in place of .github/ or .github/workflows/ (allow_workflow_changes)"
    assert "src/.github/workflows" not in refused  # GitHub runs workflows from the top only


async def test_more_names_than_the_host_checks_refuse_the_whole_change_set(ws, monkeypatch):
    monkeypatch.setattr(changeset, "MAX_NAMES_BYTES", 5_000)
    for i in range(100):
        (ws.path / f"file-{i:03}.txt").write_text("x")
    assert changes(ws).refused == [("the workspace", "more names than the host checks (0 MiB of paths)")]


async def test_a_gitignore_too_deep_for_the_shadow_tree_is_passed_over(ws):
    deep = ws.path.joinpath(*["g" * 200] * 15)  # 3 kB: a valid path, too long beside the shadow's prefix
    deep.mkdir(parents=True)
    (deep / ".gitignore").write_text("*.tmp\n")
    (deep / "x.tmp").write_text("x")
    assert sorted(p.rsplit("/", 1)[-1] for p in changes(ws).paths) == [".gitignore", "x.tmp"]
