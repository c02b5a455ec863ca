"""From a stored delivery to stored work: the inbox, its import, routing into intents, the slash parser.
Runs in the worker; nothing here talks to GitHub."""
