"""Why a job that may run has not started yet: its place in line and the limit that holds it, or the
job it follows. Pure data; the engine's dispatcher knows the figures, the pipeline shows them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from app.domain.job import JobState

# Places are counted up to this many; further back a job reads "more than 10 ahead" and is not edited
# again until it comes closer (each edit of a waiting job costs two GitHub API calls).
PLACES_SHOWN = 10

Scope = Literal["repository", "installation", "service"]


class Place(BaseModel):
    """A job waiting for a free place: `position` 1 is next in line among the jobs the same limit holds."""

    model_config = ConfigDict(frozen=True)
    position: int
    scope: Scope  # the narrowest limit that is full: the repository's, the installation's, the service's
    limit: int  # how many jobs that limit lets run at once

    @property
    def beyond(self) -> bool:
        return self.position > PLACES_SHOWN


class After(BaseModel):
    """A follow-up waiting for the job before it on the same issue to end."""

    model_config = ConfigDict(frozen=True)
    job_id: str
    worker: str | None
    state: JobState


Wait = Place | After
