"""Nothing the agent writes runs on the host, or reaches a commit unless it is plain repository data.

Each attack is made by the real Claude Code CLI in the real sandbox (the scripted model sends
one Bash command), then AgentVine publishes as usual. Every command that would prove code ran
on the host writes a marker file in a host folder anyone may write to; it must never appear.
For each: the job ends in a terminal state with a reason on GitHub, nothing outside the
workspace is read into a commit, and no container, mount or job file is left.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from app.pipeline.present import texts
from app.domain.job import JobState
from app.fakes.model_api import ScriptedTurn, ToolUse
from tests.support.harness import REPO, end_to_end, job_containers

pytestmark = [pytest.mark.docker, pytest.mark.claude]

SUBMODULE_SHA = "1234567890abcdef1234567890abcdef12345678"
FILES = {
    "README.md": "# hello\n",
    "hello.py": "print('hi')\n",
    ".gitmodules": '[submodule "sub"]\n\tpath = sub\n\turl = https://example.invalid/sub.git\n',
    "sub": ("160000", SUBMODULE_SHA),
}
EDIT = "printf 'print(\"hello\")\\n' > /workspace/hello.py"


def marker_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "marker"
    folder.mkdir()
    folder.chmod(0o777)  # whoever ran it on the host (root or the git user) could write here
    return folder


def pwn(marker: Path, name: str) -> str:
    return f"sh -c 'id > {marker}/{name}; cat'"


@dataclass
class Attack:
    command: str  # run by the agent in the sandbox, as one Bash call
    refused: list[str] = field(default_factory=list)  # substrings of the reason on GitHub
    title: str = texts.OUTCOME["refused_paths"]
    config: str = ""


def attacks(marker: Path, data_dir: Path) -> dict[str, Attack]:
    return {
        "nested repository with a clean filter at a gitlink path": Attack(
            f"cd /workspace && {EDIT} && git init -q sub && cd sub && echo x > f && git add f && "
            "git -c user.name=a -c user.email=b commit -qm x && "
            f"git config filter.pwn.clean \"{pwn(marker, 'filter')}\" && git config filter.pwn.smudge \"{pwn(marker, 'smudge')}\" && "
            "echo '* filter=pwn' > .gitattributes && touch f",
            refused=["`sub`: files inside a submodule's directory"],
        ),
        "nested .git with core.fsmonitor and hooks": Attack(
            f"cd /workspace && {EDIT} && mkdir -p lib && git init -q lib && "
            f"git -C lib config core.fsmonitor \"{pwn(marker, 'fsmonitor')}\" && "
            f"for h in pre-commit post-checkout reference-transaction; do printf '#!/bin/sh\\nid > {marker}/hook\\n' > lib/.git/hooks/$h; chmod +x lib/.git/hooks/$h; done && "
            "echo data > lib/file.txt",
            refused=["`lib/.git`: a `.git` below the top level"],
        ),
        "symlinks to /etc/passwd and into the data directory": Attack(
            f"cd /workspace && {EDIT} && ln -s /etc/passwd passwd && ln -s {data_dir}/agentvine.db db && "
            "ln -s ../../../../../../../../etc/shadow shadow",
            refused=["`passwd`: a symlink pointing outside the repository (`/etc/passwd`)",
                     f"`db`: a symlink pointing outside the repository (`{data_dir}/agentvine.db`)",
                     "`shadow`: a symlink pointing outside the repository"],
        ),
        "a hard link": Attack(
            "cd /workspace && echo secret > ~/secret && (ln ~/secret stolen || true) && ln hello.py again.py",
            refused=["`again.py`: a hard link"],
        ),
        "a FIFO": Attack(f"cd /workspace && {EDIT} && mkfifo pipe", refused=["`pipe`: a FIFO"]),
        "a 5 GB sparse file": Attack(
            f"cd /workspace && {EDIT} && truncate -s 5G big.bin",
            refused=["`big.bin`: 5120 MB, larger than workspace.max_file_mb (50 MB)"],
        ),
        "paths that normalise into .github/workflows/": Attack(
            "cd /workspace && mkdir -p .GitHub/Workflows '.github/workflows\u200c' \uff0egithub/workflows staging && "
            "echo 'on: push' > .GitHub/Workflows/a.yml && echo 'on: push' > '.github/workflows\u200c/b.yml' && "
            "echo 'on: push' > \uff0egithub/workflows/c.yml && echo 'on: push' > staging/d.yml && "
            "mkdir -p .github && mv staging .github/workflows",
            refused=["`.GitHub/Workflows/a.yml`: changes to .github/workflows/",
                     "`.github/workflows\u200c/b.yml`: changes to .github/workflows/",
                     "`\uff0egithub/workflows/c.yml`: changes to .github/workflows/",
                     "`.github/workflows/d.yml`: changes to .github/workflows/"],
        ),
        "a change to .gitmodules": Attack(
            "cd /workspace && sed -i 's#example.invalid#evil.invalid#' .gitmodules",
            refused=["`.gitmodules`: submodule configuration"],
        ),
        "200,000 small files": Attack(
            "cd /workspace && mkdir many && cd many && seq 1 200000 | xargs touch 2>/dev/null; echo done",
            title=texts.OUTCOME["workspace_quota"], refused=["more than 100000 files (workspace.max_files)"],
        ),
        "filling the disk": Attack(
            "cd /workspace && (fallocate -l 5G fill || dd if=/dev/zero of=fill bs=1M count=300) 2>/dev/null; echo done",
            title=texts.OUTCOME["workspace_quota"], refused=["grew past 64 MB (workspace.max_size_mb)"],
            config="workspace: {max_size_mb: 64}\n",
        ),
    }


CASES = list(attacks(Path("/m"), Path("/d")))


def _mounted(path: Path) -> bool:
    with open("/proc/mounts") as mounts:
        return any(str(path) in line for line in mounts)


@pytest.mark.parametrize("case", CASES)
async def test_attack_runs_nothing_on_the_host_and_commits_nothing(case, tmp_path, sandbox_image, docker_client):
    marker = marker_dir(tmp_path)
    files = dict(FILES)
    data_dir = tmp_path / "agentvine"
    attack = attacks(marker, data_dir)[case]
    if attack.config:
        files[".github/agentvine.yml"] = attack.config
    script = [ScriptedTurn(tool_uses=[ToolUse(name="Bash", input={"command": attack.command})]),
              ScriptedTurn(text="Done: hello.py prints hello.")]
    async with end_to_end(tmp_path, sandbox_image, script, files=files) as (bot, model):
        issue = bot.github.add_issue(REPO, title="Say hello", user="alice")
        answer = await bot.label(issue["number"], "agentvine:bugfix")
        await bot.settle(timeout=240)
        job = bot.job(answer["jobs"][0])
        (run,) = bot.github.check_runs_for(REPO)
        branches = bot.github.branches(REPO)

    assert list(marker.iterdir()) == []  # no code ran on the host
    # The attack's command ran in the sandbox (a quota may stop it before its result comes back).
    assert len(model.tool_results()) == 1 or attack.title == texts.OUTCOME["workspace_quota"]
    assert (job.state, job.conclusion) == (JobState.FAILED, "failure"), job.outcome
    assert run["conclusion"] == "failure" and run["output"]["title"] == attack.title
    shown = run["output"]["summary"] + (run["output"].get("text") or "")
    for reason in attack.refused:
        assert reason in job.outcome.detail and reason in shown, (reason, job.outcome.detail)
    assert job.branch not in branches and bot.github.pulls == []  # nothing was committed or pushed
    assert job_containers(docker_client, job) == []
    assert not (data_dir / "jobs" / job.id).exists() and not _mounted(data_dir / "jobs" / job.id)


async def test_attributes_drivers_and_hooks_in_the_agents_git_never_run_and_files_commit_as_written(
        tmp_path, sandbox_image, docker_client):
    """A top-level .gitattributes naming filter, diff and textconv drivers that the agent defined
    in its own .git/config, plus hooks and fsmonitor there: the host commits the bytes as written."""
    marker = marker_dir(tmp_path)
    git = "git -C /workspace config"
    command = (
        f"cd /workspace && {git} filter.pwn.clean \"{pwn(marker, 'clean')}\" && {git} filter.pwn.smudge \"{pwn(marker, 'smudge')}\" && "
        f"{git} filter.pwn.process \"{pwn(marker, 'process')}\" && {git} diff.pwn.textconv \"{pwn(marker, 'textconv')}\" && "
        f"{git} diff.pwn.command \"{pwn(marker, 'diff')}\" && {git} core.fsmonitor \"{pwn(marker, 'fsmonitor')}\" && "
        f"printf '#!/bin/sh\\nid > {marker}/hook\\n' > .git/hooks/pre-commit && chmod +x .git/hooks/pre-commit && "
        "printf '* filter=pwn diff=pwn\\n*.py text eol=crlf\\n' > .gitattributes && "
        f"{EDIT}"
    )
    script = [ScriptedTurn(tool_uses=[ToolUse(name="Bash", input={"command": command})]), ScriptedTurn(text="Done.")]
    async with end_to_end(tmp_path, sandbox_image, script, files=FILES) as (bot, _):
        issue = bot.github.add_issue(REPO, title="Say hello", user="alice")
        answer = await bot.label(issue["number"], "agentvine:bugfix")
        await bot.settle(timeout=240)
        job = bot.job(answer["jobs"][0])
        assert (job.state, job.conclusion) == (JobState.SUCCEEDED, "success"), job.outcome
        assert bot.github.read_file(REPO, job.branch, "hello.py") == 'print("hello")\n'  # no filter, no CRLF
        assert bot.github.read_file(REPO, job.branch, ".gitattributes").startswith("* filter=pwn")
        assert job.outcome.files == [".gitattributes", "hello.py"]
    assert list(marker.iterdir()) == []
    assert job_containers(docker_client, job) == []
    assert not (tmp_path / "agentvine" / "jobs" / job.id).exists()


def _tree(bot, ref: str) -> dict[str, tuple[str, str]]:
    out = bot.github.repo(REPO).git.git("ls-tree", "-r", "-z", "--full-tree", ref).decode()
    entries = {}
    for item in filter(None, out.split("\0")):
        meta, path = item.split("\t", 1)
        mode, _kind, sha = meta.split()
        entries[path] = (mode, sha)
    return entries


async def test_legitimate_changes_keep_submodules_symlinks_binaries_modes_deletions_and_renames(
        tmp_path, sandbox_image, docker_client):
    files = {**FILES, "docs/guide.md": "# Guide\n", "docs/link.md": ("120000", "guide.md"), "run.sh": "echo run\n",
             "old_name.txt": "moved content\n", "gone.txt": "bye\n", ".gitignore": "__pycache__/\n*.log\n",
             "logo.bin": b"\x89PNG\r\n\x1a\n\x00\x01"}
    binary = "printf '\\000\\001\\002\\377binary\\r\\n' > data.bin"
    command = (
        f"cd /workspace && {EDIT} && {binary} && ln -s docs/guide.md guide-link && chmod +x run.sh && "
        "rm gone.txt && mv old_name.txt new_name.txt && mkdir -p __pycache__ && echo cache > __pycache__/x.pyc && "
        "echo noise > debug.log && echo more >> docs/guide.md && touch README.md"
    )
    script = [ScriptedTurn(tool_uses=[ToolUse(name="Bash", input={"command": command})]), ScriptedTurn(text="Done.")]
    async with end_to_end(tmp_path, sandbox_image, script, files=files) as (bot, _):
        base = _tree(bot, "main")
        issue = bot.github.add_issue(REPO, title="Tidy up", user="alice")
        answer = await bot.label(issue["number"], "agentvine:bugfix")
        await bot.settle(timeout=240)
        job = bot.job(answer["jobs"][0])
        assert (job.state, job.conclusion) == (JobState.SUCCEEDED, "success"), job.outcome
        tree = _tree(bot, job.branch)
        repo_git = bot.github.repo(REPO).git

    assert tree["sub"] == ("160000", SUBMODULE_SHA)  # the submodule is untouched
    assert tree["docs/link.md"] == base["docs/link.md"] and tree["logo.bin"] == base["logo.bin"]
    assert tree["guide-link"][0] == "120000"
    assert repo_git.git("cat-file", "blob", tree["guide-link"][1]) == b"docs/guide.md"
    assert repo_git.git("cat-file", "blob", tree["data.bin"][1]) == b"\x00\x01\x02\xffbinary\r\n"
    assert tree["run.sh"][0] == "100755" and tree["run.sh"][1] == base["run.sh"][1]
    assert "gone.txt" not in tree and "old_name.txt" not in tree
    assert tree["new_name.txt"][1] == base["old_name.txt"][1]
    assert not any(p.startswith("__pycache__/") or p.endswith(".log") for p in tree)  # .gitignore honoured
    assert tree["README.md"] == base["README.md"]  # touched, not changed
    assert sorted(job.outcome.files) == sorted(
        ["data.bin", "docs/guide.md", "gone.txt", "guide-link", "hello.py", "new_name.txt", "old_name.txt", "run.sh"])
    assert job_containers(docker_client, job) == []
    assert not (tmp_path / "agentvine" / "jobs" / job.id).exists()

