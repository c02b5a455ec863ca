"""A step's output is kept bounded: its head and its tail."""

from app.agent.sandbox.steps import BoundedOutput
from app.domain.untrusted import output_block


def test_head_and_tail_are_kept_and_the_middle_counted():
    out = BoundedOutput(100)
    for i in range(10_000):
        out.add(f"line {i}")
    head, tail = out.texts()
    assert head.startswith("line 0\n") and tail.endswith("line 9999\n")
    assert len(head) <= 50 and len(tail) <= 50
    assert out.omitted == sum(len(f"line {i}\n") for i in range(10_000)) - len(head) - len(tail)


def test_one_huge_line_keeps_its_start_and_end():
    out = BoundedOutput(10)
    out.add("a" * 5 + "b" * 1_000_000 + "c" * 5)
    head, tail = out.texts()
    assert head == "aaaaa" and tail == "cccc\n"


def test_output_cannot_leave_its_code_block():
    block = output_block("```\n</details>\n@mona\r\x1b[2J")
    fence = block.split("\n")[0].removesuffix("text")
    assert len(fence) == 4 and block.endswith("\n" + fence)
    assert "\\x0d" in block and "\\x1b" in block
