"""The job and its state machine, the commands people can give, the configuration: pure data, no I/O.
Every other folder builds on these."""
