"""The job views as HTML: a job's page, which follows its activity live, and the operator's list.

Everything shown is escaped, and the page script writes event data with `textContent` only: the data is
job data. No external asset; the Content-Security-Policy allows exactly the one inline style and script
(by hash), connections to this service alone (the EventSource), and nothing else."""

from __future__ import annotations

import base64
import hashlib
import html
from datetime import datetime, timezone

from app.domain.job import JobState
from app.web.job_views import JobSummary, PublicEvent, PublicJob

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
    "th,td{text-align:left;padding:.2rem .8rem .2rem 0;vertical-align:top}"
    "#live{color:#555;font-size:.9rem}form{margin:1rem 0}input,select{margin-right:.6rem}"
)

# Follows GET /jobs/{id}/events: each event becomes a row, `job` and `end` refresh the fields above.
LIVE_SCRIPT = """"use strict";
(function () {
  var url = document.body.getAttribute("data-stream");
  var rows = document.getElementById("events"), status = document.getElementById("live");
  if (!url || !window.EventSource) { return; }
  function when(at) { return new Date(at * 1000).toISOString().slice(0, 19).replace("T", " ") + " UTC"; }
  function text(value) { return value === null || value === undefined ? "" : String(value); }
  function cell(row, value) { var td = document.createElement("td"); td.textContent = text(value); row.appendChild(td); }
  function show(job) {
    document.querySelectorAll("td[data-field]").forEach(function (td) {
      var name = td.getAttribute("data-field");
      if (Object.prototype.hasOwnProperty.call(job, name)) { td.textContent = text(job[name]); }
    });
  }
  var source = new EventSource(url);
  source.onopen = function () { status.textContent = "Live: new activity appears below."; };
  source.onmessage = function (message) {
    var event = JSON.parse(message.data);
    if (document.getElementById("e" + event.seq)) { return; }
    var row = document.createElement("tr");
    row.id = "e" + event.seq;
    cell(row, when(event.at)); cell(row, event.kind); cell(row, event.data.state);
    rows.appendChild(row);
  };
  source.addEventListener("job", function (message) { show(JSON.parse(message.data)); });
  source.addEventListener("end", function (message) {
    show(JSON.parse(message.data));
    status.textContent = "The job has ended.";
    source.close();
  });
  source.onerror = function () {
    if (source.readyState !== EventSource.CLOSED) { status.textContent = "Reconnecting\\u2026"; }
  };
})();
"""


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; script-src {_hash(LIVE_SCRIPT)}; style-src {_hash(STYLE)}; connect-src 'self'; "
    "img-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# On every job view, JSON included: the job's address is its key, so no Referer leaves with it.
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
JOB_FIELDS = ("state", "conclusion", "reason", "worker", "level", "model")
LIST_TITLE = "AgentVine jobs"
OLDER = "Older jobs →"
NO_JOBS = "No job matches."


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value))


def when(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _document(title: str, body: str, *, body_attributes: str = "", script: bool = False) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body{body_attributes}>{body}"
        + (f"<script>{LIVE_SCRIPT}</script>" if script else "") + "</body></html>"
    )


def job_page(job: PublicJob, events: list[PublicEvent], stream_url: str) -> str:
    """The page a check run's Details link opens. While the job runs it follows the job's events."""
    fields = "".join(f"<tr><th>{name}</th><td data-field='{name}'>{esc(getattr(job, name))}</td></tr>"
                     for name in JOB_FIELDS)
    rows = "".join(f"<tr id='e{e.seq}'><td>{when(e.at)}</td><td>{esc(e.kind)}</td><td>{esc(e.data.get('state'))}</td></tr>"
                   for e in events)
    live = not job.terminal
    body = (
        f"<h1>🌱 AgentVine job <code>{esc(job.id)}</code></h1><table>{fields}</table>"
        f"<p id='live' role='status'>{'Connecting…' if live else 'The job has ended.'}</p>"
        "<h2>What happened</h2><table><thead><tr><th>When</th><th>What</th><th>State</th></tr></thead>"
        f"<tbody id='events'>{rows}</tbody></table>"
    )
    after = f"{stream_url}?after={events[-1].seq if events else -1}"
    return _document(f"AgentVine job {job.id}", body, body_attributes=f" data-stream='{esc(after)}'" if live else "",
                     script=live)


def _link(url: str | None, label: str) -> str:
    """Only http(s) links: a javascript: URL in job data must not become one."""
    if not url or not url.startswith(("https://", "http://")):
        return ""
    return f"<a href='{esc(url)}' rel='noreferrer'>{esc(label)}</a>"


def _filters(repo: str | None, states: tuple[JobState, ...], worker: str | None) -> str:
    options = "".join(f"<option value='{s.value}'{' selected' if s in states else ''}>{s.value}</option>"
                      for s in JobState)
    return (
        "<form method='get' action='/jobs'>"
        f"<label>Repository <input name='repo' value='{esc(repo)}' placeholder='owner/name'></label>"
        f"<label>State <select name='state'><option value=''>any</option>{options}</select></label>"
        f"<label>Worker <input name='worker' value='{esc(worker)}' size='10'></label>"
        "<button type='submit'>Show</button></form>"
    )


def _row(job: JobSummary) -> str:
    kind = "PR" if job.is_pull_request else "issue"
    cost = f"${job.cost_usd:.2f}" if job.cost_usd is not None else ""
    return (
        f"<tr><td>{when(job.created_at)}</td><td>{esc(job.repo)}</td><td>{kind} #{job.issue_number}</td>"
        f"<td>{esc(job.worker)}</td><td>{esc(job.state.value)}</td><td>{esc(job.conclusion)}</td><td>{cost}</td>"
        f"<td><a href='/jobs/{esc(job.id)}'><code>{esc(job.id[:12])}</code></a></td>"
        f"<td>{_link(job.pr_url, 'pull request')}</td></tr>"
    )


def list_page(jobs: list[JobSummary], next_url: str | None, filters: tuple[str | None, tuple[JobState, ...], str | None]) -> str:
    head = "".join(f"<th>{name}</th>" for name in ("Created", "Repository", "On", "Worker", "State", "Conclusion",
                                                   "Cost", "Job", ""))
    rows = "".join(_row(job) for job in jobs) or f"<tr><td colspan='9'>{NO_JOBS}</td></tr>"
    older = f"<p><a href='{esc(next_url)}' rel='next'>{OLDER}</a></p>" if next_url else ""
    body = (f"<h1>🌱 {LIST_TITLE}</h1>{_filters(*filters)}<table><thead><tr>{head}</tr></thead>"
            f"<tbody id='jobs'>{rows}</tbody></table>{older}")
    return _document(LIST_TITLE, body)


def message_page(title: str, message: str) -> str:
    return _document(title, f"<h1>{esc(title)}</h1><p>{esc(message)}</p>")
