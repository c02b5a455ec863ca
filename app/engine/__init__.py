"""Runs stored work: the dispatcher (stages, limits, recovery, cancellation) and the worker around it.
It knows the stages by name, not what they do."""
