"""A faithful, stateful fake of the GitHub REST API and git hosting, for tests and the demo.

See docs/github-fake.md.
"""

from .state import FakeGitHub, Fault, RecordedCall

__all__ = ["FakeGitHub", "Fault", "RecordedCall"]
