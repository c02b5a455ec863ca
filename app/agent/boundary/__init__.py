"""The host boundary around the agent's files: the host's own repository and the checkout it writes
(workspace), the agent's tree read back as data and committed (changeset and its helpers), host git."""
