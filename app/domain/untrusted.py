"""Text that came from the agent (which read untrusted issues and code) or from the repository, made
inert for the Markdown context it lands in on GitHub, and capped at GitHub's limits.

Each escaper names its context: `code_span` (inline code), `table_cell`, `list_item`, `block_quote`,
`link_text`, `one_line` (plain-text titles), `markdown_block` (the agent's own Markdown). All of
them `defuse` @mentions and issue references, but `suggestion_block` (code GitHub can commit, where
neither is linked); `cap` cuts a whole body without opening an escape.
"""

from __future__ import annotations

import html
import re

ZWSP = "\u200b"  # zero-width space: keeps text readable and makes a mention or reference inert

# --- GitHub's limits -----------------------------------------------------------------------------
# Measured here in UTF-8 bytes, never fewer than the characters GitHub counts (github/rest-api-description
# #5399: check-run "characters" behave as bytes in practice), so a body within them is always accepted.
# Issue/PR comment, PR body, review body: 422 "body is too long (maximum is 65536 characters)"
# (REST "Create an issue comment" / "Create a pull request"; reports in renovatebot/renovate#2032,
# houndci/hound#1354 for review bodies).
MAX_COMMENT = 65_536
# Check run output.summary and output.text: "**Maximum length**: 65535 characters" (REST "Create a check
# run", app/fakes/github/rest-subset.json, maxLength 65535).
MAX_CHECK_TEXT = 65_535
# Check run output.title: the REST description gives no limit ("The title of the check run."); one line
# of at most the annotation title's 255 keeps it short and safe.
MAX_CHECK_TITLE = 255
# Annotation message / raw_details: "The maximum size is 64 KB"; title: "The maximum size is 255 characters".
MAX_ANNOTATION_MESSAGE = 64_000
MAX_ANNOTATION_TITLE = 255
MAX_NAME = 300  # a file name shown in a code span; longer ones end in "…"

# --- mentions and references ---------------------------------------------------------------------
# GitHub links "@name" after the start or any non-word character (html-pipeline's MentionFilter:
# `(?:^|\W)@name`), a backtick included, and skips only text inside <code>, <pre> and <a>.
_MENTION = re.compile(r"(?<!\w)@(?=[A-Za-z0-9])")
# "#12", "owner#12", "owner/repo#12", "GH-12" and issue URLs cross-reference: a backlink in the other
# issue's timeline (any repository), so the agent could spam them. All are defused.
_REFERENCE = re.compile(r"#(?=\d)|(?<![\w-])(?i:gh)-(?=\d)"
                        r"|(?i:github\.com)/[^/\s]+/[^/\s]+/(?:issues|pull|discussions)/(?=\d)")
_BACKTICKS = re.compile(r"`+")


def _code_starts(text: str) -> set[int]:
    """Where the content of a code span GitHub surely renders as code begins: a backtick run closed by
    one of the same length on the same line (CommonMark), outside a backslash escape, on a line with
    no "|" (a table splits cells first) and no "<" (an HTML tag that starts earlier wins)."""
    starts: set[int] = set()
    offset = 0
    for line in text.split("\n"):
        i = 0
        while i < len(line) and "|" not in line and "<" not in line:
            if line[i] == "\\":
                i += 2
                continue
            run = _BACKTICKS.match(line, i)
            if run is None:
                i += 1
                continue
            close = next((m for m in _BACKTICKS.finditer(line, run.end()) if len(m.group()) == len(run.group())), None)
            if close is not None:
                starts.add(offset + run.end())
            i = close.end() if close is not None else run.end()
        offset += len(line) + 1
    return starts


def _defuse(pattern: re.Pattern[str], text: str) -> str:
    if not pattern.search(text):
        return text
    code = _code_starts(text)
    return pattern.sub(lambda m: m.group() if m.end() - 1 in code or m.start() in code else m.group() + ZWSP, text)


def defuse_mentions(text: str) -> str:
    """Keep @user and @org/team mentions from notifying anyone: a zero-width space after "@" wherever
    GitHub could link it; e-mail addresses (a word character before "@") and code are left alone."""
    return _defuse(_MENTION, text)


def defuse(text: str) -> str:
    """`defuse_mentions`, and issue/PR references ("#12", "o/r#12", "GH-12", issue URLs) made inert."""
    return _defuse(_REFERENCE, defuse_mentions(text))


# --- inline contexts -----------------------------------------------------------------------------
# Shown escaped in a name: C0/C1 controls (a newline ends the line), line/paragraph separators and
# bidirectional overrides (which would make a name read as another).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _clipped(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def code_span(text: str, limit: int = MAX_NAME) -> str:
    """`text` (a file name the agent chose) as one inline code span it cannot leave.

    Control characters are shown escaped (a newline would end the list item), and the fence is
    longer than any run of backticks inside, as CommonMark requires, so no Markdown and no
    @mention in the name takes effect. A space pads content that starts or ends with a backtick, or
    with spaces on both sides (CommonMark strips one from each)."""
    shown = _clipped(_CONTROL.sub(_shown, text), limit)
    if not shown:
        return "` `"
    longest = max((len(run) for run in _BACKTICKS.findall(shown)), default=0)
    fence = "`" * (longest + 1)
    both_spaces = shown.startswith(" ") and shown.endswith(" ") and shown.strip(" ")
    pad = " " if shown.startswith("`") or shown.endswith("`") or longest or both_spaces else ""
    return f"{fence}{pad}{defuse(shown) if longest else shown}{pad}{fence}"


def html_code(text: str, limit: int = MAX_NAME) -> str:
    """`text` as inline code inside an HTML element (a `<summary>`): there CommonMark parses no
    Markdown, so a backtick span protects nothing; the text is HTML-escaped instead, controls shown
    escaped, and every @ and # reference made inert (GitHub links mentions in HTML text too)."""
    shown = _clipped(_CONTROL.sub(_shown, text), limit)
    inert = _REFERENCE.sub(lambda m: m.group() + ZWSP, _MENTION.sub(lambda m: m.group() + ZWSP, shown))
    return f"<code>{html.escape(inert, quote=True)}</code>"


def html_text(text: str, limit: int) -> str:
    """Plain text inside an HTML element: one line, HTML-escaped, mentions and references inert."""
    inert = _REFERENCE.sub(lambda m: m.group() + ZWSP, _MENTION.sub(lambda m: m.group() + ZWSP, one_line(text, limit)))
    return html.escape(inert, quote=True)


def one_line(text: str, limit: int) -> str:
    """Plain text for a single line (a title): controls and line breaks become spaces, capped."""
    return _clipped(" ".join(_CONTROL.sub(" ", text).split()), limit)


def table_cell(markdown: str) -> str:
    """Inline Markdown (plain text or a `code_span`) for one GFM table cell: one line, and every pipe
    escaped, also inside code (the table splits cells before code spans are seen). Backslashes right
    before a pipe are doubled so they cannot escape the escape."""
    flat = " ".join(_CONTROL.sub(" ", markdown).split())
    return defuse(re.sub(r"(\\*)\|", lambda m: m.group(1) * 2 + "\\|", flat))


# A line that would start a block of its own: list item, quote, heading, fence, table, setext
# underline or thematic break, HTML block.
_BLOCK_START = re.compile(r"^([ \t]*)(?:([-+*>#|=:~`<])|(\d{1,9})([.)]))")


def _inert_line(line: str) -> str:
    return _BLOCK_START.sub(lambda m: f"{m.group(1)}{m.group(3) or ''}\\{m.group(2) or m.group(4)}", line)


def _lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def list_item(text: str, indent: str = "  ") -> str:
    """Text for the content of one list item ("- " + this): the lines after the first are indented into
    the item, and none of them starts a list, quote, heading, fence or table of its own."""
    first, *rest = _lines(defuse(text))
    return "\n".join([first, *(indent + _inert_line(line) if line.strip() else "" for line in rest)])


def block_quote(text: str) -> str:
    """Text as one block quote: every line quoted, so nothing escapes it."""
    return "\n".join(f"> {line}" for line in _lines(defuse(text.strip()))) if text.strip() else "> (empty)"


def link_text(text: str) -> str:
    """Text for inside [...]: one line, brackets and backslashes escaped so it cannot close the link."""
    return defuse(re.sub(r"([\\\[\]])", r"\\\1", one_line(text, MAX_NAME)))


# --- the agent's own Markdown --------------------------------------------------------------------
_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
# HTML blocks that a blank line does not end (CommonMark kinds 1-5): they would swallow what follows.
_HTML_BLOCK = re.compile(r"^( {0,3})<(?=!|\?|(?i:pre|script|style|textarea)(?:[\s>]|$))", re.MULTILINE)


def _open_fence(text: str) -> str | None:
    """The line that closes a fenced code block left open at the end of `text`, if one is."""
    opened: tuple[str, str] | None = None
    for line in text.split("\n"):
        m = _FENCE.match(line)
        if m is None:
            continue
        indent, fence, rest = m.groups()
        if opened is None and not (fence[0] == "`" and "`" in rest):
            opened = (indent, fence)
        elif opened is not None and fence[0] == opened[1][0] and len(fence) >= len(opened[1]) and not rest.strip():
            opened = None
    return None if opened is None else opened[0] + opened[1]


def markdown_block(text: str) -> str:
    """The agent's Markdown (a summary) for a body of ours: defused, no HTML block that would hide the
    rest of the body, and a fenced code block it left open closed."""
    block = _HTML_BLOCK.sub(r"\1&lt;", defuse(text))
    fence = _open_fence(block)
    return block if fence is None else block.rstrip("\n") + "\n" + fence


def suggestion_block(code: str) -> str:
    """`code` (the agent's replacement for some lines) as a GitHub ```suggestion block it cannot leave:
    the fence is longer than any run of backticks inside. Nothing is defused: in a code block GitHub
    links no mention and no reference, and a zero-width space would end up in the committed code."""
    code = code.replace("\r\n", "\n").replace("\r", "\n")
    longest = max((len(run) for run in _BACKTICKS.findall(code)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}suggestion\n{code}\n{fence}" if code else f"{fence}suggestion\n{fence}"


# --- caps ----------------------------------------------------------------------------------------
def size(text: str) -> int:
    return len(text.encode())


def _head(text: str, budget: int) -> str:
    """At most `budget` bytes of `text`, cut after a whole line when one ends in the second half; a
    line cut in the middle loses everything from its first backtick (a cut code span would end)."""
    head = text.encode()[: max(budget, 0)].decode(errors="ignore")
    newline = head.rfind("\n")
    if newline >= len(head) // 2:
        return head[:newline]
    start = newline + 1
    tick = head.find("`", start)
    return head if tick < 0 else head[:tick]


def cap(text: str, limit: int, note: str) -> str:
    """`text` within `limit` bytes: when it is longer, cut where no escape is open, any fenced code
    block closed, and `note` (what was cut, where the full text is) in a paragraph of its own."""
    if size(text) <= limit:
        return text
    tail = f"\n\n{note}"
    budget = limit - size(tail)
    while True:
        head = _head(text, budget)
        fence = _open_fence(head)
        body = head + (f"\n{fence}" if fence else "")
        if size(body) + size(tail) <= limit or budget <= 0:
            return body + tail if size(body + tail) <= limit else note.encode()[:limit].decode(errors="ignore")
        budget -= size(body) + size(tail) - limit


def cap_plain(text: str, limit: int) -> str:
    """Plain text (an annotation message) within `limit` bytes, ending in "…" when cut."""
    return text if size(text) <= limit else text.encode()[: limit - 3].decode(errors="ignore") + "…"


_OUTPUT_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def output_block(text: str) -> str:
    """A command's output (the repository's and the agent's bytes) as a fenced code block it cannot
    leave: the fence is longer than any run of backticks inside, and control characters but newline and
    tab are shown escaped (a lone `\\r` would hide a line). Inside a code block GitHub renders no HTML,
    so a `</details>` in the output closes nothing, and links no mention or reference."""
    shown = _OUTPUT_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text.replace("\r\n", "\n"))
    longest = max((len(run) for run in _BACKTICKS.findall(shown)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{shown.rstrip(chr(10))}\n{fence}"
