"""The escapers for text that lands on GitHub: hostile names and texts stay inert where they land."""

import re

import pytest

from app.domain import untrusted as u

ZW = "\u200b"


def _live_mentions(markdown: str) -> list[str]:
    """@names GitHub would link: "@" after the start or a non-word character, outside code spans on
    lines without tables or HTML (a conservative reading of GitHub's mention filter)."""
    outside = re.sub(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", " ", markdown) if "|" not in markdown else markdown
    return re.findall(r"(?<!\w)@[A-Za-z0-9][\w-]*", outside)


@pytest.mark.parametrize("text", ["x`@alice", "`@org/team", "a `b`@alice", "``@alice`", "\\`@alice`",
                                  "| `a | @alice` |", "<b title=\"`\">@alice`</b>"])
def test_an_at_after_a_backtick_that_opens_no_code_span_is_defused(text):
    assert f"@{ZW}" in u.defuse(text)
    assert f"@{ZW}" in u.defuse_mentions(text)


def test_an_at_that_is_code_is_left_as_it_is():
    assert u.defuse("run `@decorator` now") == "run `@decorator` now"


@pytest.mark.parametrize("text,shown", [("see #12", f"see #{ZW}12"), ("other/repo#3", f"other/repo#{ZW}3"),
                                        ("GH-7", f"GH-{ZW}7"),
                                        ("https://github.com/o/r/issues/9", f"https://github.com/o/r/issues/{ZW}9")])
def test_issue_references_are_defused_so_no_timeline_gets_a_backlink(text, shown):
    assert u.defuse(text) == shown
    assert u.defuse(u.defuse(text)) == shown  # idempotent


HOSTILE_NAMES = ["x](https://evil)", "a|b", "`", "``", "<img src=x>", "\n- [x] approved", "@alice", "#1",
                 " a ", "", "a\u202eb", "ends`", "x" * 5000, "`@alice` |@bob|\r\n# h"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_code_span_holds_any_name_on_one_line(name):
    span = u.code_span(name)
    assert "\n" not in span and "\r" not in span and len(span) <= u.MAX_NAME + 20
    fence = re.match(r"`+", span).group()
    inner = span[len(fence):-len(fence)]
    assert span.endswith(fence) and fence not in inner.replace(fence + "`", "")  # nothing inside closes it
    assert not any(len(run) == len(fence) for run in re.findall(r"`+", inner))
    assert not inner or inner.strip("`") == inner or inner.startswith(" ") and inner.endswith(" ")


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_table_cell_holds_any_name(name):
    row = f"| {u.table_cell(u.code_span(name))} | {u.table_cell(name)} |"
    assert "\n" not in row
    pipes = re.findall(r"(?<!\\)(?:\\\\)*\|", row)  # unescaped pipes split cells
    assert len(pipes) == 3


def test_a_list_item_keeps_hostile_lines_inside_it():
    item = "- " + u.list_item("finding\n- [x] approved by @alice\n# Heading\n```\n> quote\n1. one")
    lines = item.split("\n")
    assert all(line.startswith("  ") for line in lines[1:])
    assert not any(re.match(r" *([-*+>#]|`{3}|\d+[.)])", line[2:]) for line in lines[1:])
    assert _live_mentions(item) == []


def test_a_block_quote_holds_every_line():
    quoted = u.block_quote("a\r\nb\rc\n\n@alice")
    assert all(line.startswith(">") for line in quoted.split("\n")) and f"@{ZW}alice" in quoted


def test_link_text_cannot_close_the_link():
    assert u.link_text("x](https://evil) [y") == "x\\](https://evil) \\[y"


def test_one_line_collapses_controls_and_caps():
    assert u.one_line("a\nb\x00\tc", 100) == "a b c"
    assert len(u.one_line("x" * 300, 255)) == 255


def test_markdown_block_closes_what_would_swallow_the_rest():
    block = u.markdown_block("text\n```\ncode @alice\n")
    assert block.rstrip().endswith("```") and block.count("```") == 2
    assert u.markdown_block("<!-- hide\nrest").startswith("&lt;!--")


@pytest.mark.parametrize("limit", [200, 1000])
def test_a_cut_never_opens_an_escape_and_says_so(limit):
    text = "\n".join([u.code_span("@alice](https://evil) " * 3)] * 100) + "\n```\n" + "code\n" * 500
    out = u.cap(text, limit, "the full text is on the job page")
    assert len(out.encode()) <= limit and out.endswith("the full text is on the job page")
    assert out.count("```") % 2 == 0 and _live_mentions(out) == []
    one = u.cap("`@alice` " * 1000, limit, "cut")
    assert len(one.encode()) <= limit and _live_mentions(one) == []


def test_a_short_text_is_not_capped():
    assert u.cap("hello", 10, "cut") == "hello"
