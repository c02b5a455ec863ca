"""What runs the agent and guards its boundary: the job's files and host git, the Docker sandbox,
the model gateway, Claude Code's command line and output."""
