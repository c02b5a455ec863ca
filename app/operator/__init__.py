"""The operator's commands beside `serve`: set the App up, check an installation, list jobs, replay a
delivery. Each module is one command (`add_parser` registers it with `agentvine`); a command's parts
that outgrow it get a folder of their own (`checks/` for doctor, `deploy/` for image). They sit at
the top, beside the CLI, and may use everything below."""
