"""Every text AgentVine shows people on GitHub, in one place so tests can check them."""

TRACKING_MARKER = "<!-- agentvine:job:{job_id} -->"
CHECK_RUN_NAME = "AgentVine · {worker}"
CHECK_RUN_EXTERNAL_ID = "agentvine:{job_id}"

LEVEL_PROMISE = {
    "autonomous": "AgentVine will open a pull request ready for review.",
    "supervised": "AgentVine will open a **draft** pull request; a person decides what happens next.",
    "human-required": "AgentVine waits for a maintainer to approve (`{prefix} approve`) before it starts.",
}

STATE_HEADLINE = {
    "queued": "Queued",
    "acknowledged": "Queued",
    "waiting_for_approval": "Waiting for approval",
    "running": "Working",
    "waiting_for_answer": "Waiting for your answer",
    "succeeded": "Done",
    "failed": "Failed",
    "cancelled": "Cancelled",
    "rejected": "Not started",
}

TRACKING_COMMENT = """{marker}
### 🌱 AgentVine · {worker}

**{headline}** — @{requester} asked for a **{worker}** job ({level}, model `{model}`).
{reason}
{steps}

{promise}

<sub>Job `{job_id}` · [details]({details_url}) · `{prefix} cancel` stops it · `{prefix} help` lists commands</sub>
"""

CHECK_RUN_TITLE = {
    "queued": "Queued: {worker} for #{issue_number}",
    "waiting_for_approval": "Waiting for approval: {worker} for #{issue_number}",
}

CHECK_RUN_SUMMARY = """@{requester} asked for a **{worker}** job on #{issue_number} ({level}, model `{model}`).

{promise}
"""

UNAUTHORIZED = (
    "@{sender} only people with **{required}** access or more to this repository can start "
    "AgentVine, and yours is **{actual}**. Ask a maintainer to do it for you."
)

CONFIG_INVALID_TITLE = "Invalid .github/agentvine.yml"
CONFIG_INVALID = """AgentVine could not use `{source}`, so no work was started:

{problems}

Fix the file on the default branch, then add the label or send the command again.
"""

DEFAULT_STEPS = ("Prepare the workspace", "Run Claude Code", "Open a pull request")
REVIEW_STEPS = ("Prepare the workspace", "Run Claude Code (read-only)", "Publish the review")
