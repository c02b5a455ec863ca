"""The job pipeline: the long work, done by the dispatcher outside any webhook request."""
