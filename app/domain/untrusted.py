"""Text that came from the agent (which read untrusted issues and code) before it is published."""

from __future__ import annotations

import re

_MENTION = re.compile(r"(?<![\w`])@(?=[A-Za-z0-9])")


def defuse_mentions(text: str) -> str:
    """Keep @user and @org/team mentions in the agent's text from notifying anyone.

    A zero-width space after "@" keeps the text readable and the mention inert; e-mail
    addresses (a word character before "@") are left alone."""
    return _MENTION.sub("@\u200b", text)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def code_span(text: str) -> str:
    """`text` (a file name the agent chose) as one inline code span it cannot leave.

    Control characters are shown escaped (a newline would end the list item), and the fence is
    longer than any run of backticks inside, as CommonMark requires, so no Markdown and no
    @mention in the name takes effect."""
    shown = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    longest = max((len(run) for run in re.findall(r"`+", shown)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if shown.startswith("`") or shown.endswith("`") or longest else ""
    return f"{fence}{pad}{defuse_mentions(shown) if longest else shown}{pad}{fence}"
