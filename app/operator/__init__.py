"""The operator's commands beside `serve`: set the App up, check an installation, list jobs, replay a
delivery. Each module is one command (`add_parser` registers it with `agentvine`); they sit at the
top, beside the CLI, and may use everything below."""
