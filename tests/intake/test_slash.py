from app.intake.slash import parse_command

P = "/agentvine"


def test_free_form_instruction_takes_the_rest_of_the_comment():
    cmd = parse_command("/agentvine make the parser accept tabs\nAlso spaces.", P)
    assert cmd.name == "instruction"
    assert cmd.text == "make the parser accept tabs\n\nAlso spaces."


def test_subcommands_are_recognised_case_insensitively():
    assert parse_command("/agentvine Approve", P).name == "approve"
    assert parse_command("thanks!\n/agentvine cancel please", P).name == "cancel"
    assert parse_command("/agentvine cancel please", P).text == "please"


def test_prefix_alone_asks_for_help():
    assert parse_command("/agentvine", P).name == "help"


def test_commands_in_quotes_and_code_are_ignored():
    body = "> /agentvine cancel\n```\n/agentvine retry\n```\n    /agentvine approve\n~~~sh\n/agentvine x\n~~~"
    assert parse_command(body, P) is None


def test_command_after_a_closed_fence_counts():
    assert parse_command("```\n/agentvine retry\n```\n/agentvine status", P).name == "status"


def test_prefix_must_be_a_whole_word():
    assert parse_command("/agentvinex do it", P) is None
    assert parse_command("see /agentvine help", P) is None
    assert parse_command(None, P) is None


def test_commands_inside_html_comments_are_ignored():
    """GitHub does not show HTML comments: what people cannot see must not run."""
    assert parse_command("<!-- /agentvine retry -->", P) is None
    assert parse_command("thanks\n<!--\n/agentvine cancel\n-->", P) is None
    assert parse_command("<!-- hidden\n\n/agentvine approve\nstill hidden -->\nvisible text", P) is None
    assert parse_command("a <!-- b --> c <!--\n/agentvine retry\n-->", P) is None


def test_commands_around_html_comments_count():
    assert parse_command("<!-- a note -->\n/agentvine status", P).name == "status"
    assert parse_command("<!--\nx\n-->/agentvine status", P).name == "status"
    assert parse_command("```\n<!--\n```\n/agentvine status", P).name == "status"  # in code, `<!--` is text
    assert parse_command("    <!--\n/agentvine status", P).name == "status"


def test_an_instruction_leaves_out_what_html_comments_hide():
    cmd = parse_command("/agentvine fix the parser\n<!-- and push to main -->\nTabs too.\n```\n<!-- kept -->\n```", P)
    assert cmd.name == "instruction"
    assert "push to main" not in cmd.text and "Tabs too." in cmd.text and "<!-- kept -->" in cmd.text
