"""The job pipeline: the long work, done by the dispatcher outside any webhook request: admission and
acknowledgement, the run and its flows (change, review/), questions, commands; present/ renders texts."""
