"""Roles as repos/get-collaborator-permission-level answers them, custom repository roles included."""

import pytest

from app.github.ops import role_of


@pytest.mark.parametrize("data, role", [
    ({"permission": "write", "role_name": "maintain"}, "maintain"),  # built-in: role_name keeps maintain
    ({"permission": "read", "role_name": "triage"}, "triage"),
    ({"permission": "write", "role_name": "release-manager",
      "user": {"permissions": {"admin": False, "maintain": True, "push": True, "triage": True, "pull": True}}}, "maintain"),
    ({"permission": "write", "role_name": "release-manager"}, "write"),  # no booleans: the legacy field
    ({"permission": "read", "role_name": "auditor", "user": {"permissions": {"pull": True}}}, "read"),
    ({"permission": "none", "role_name": "", "user": {"permissions": {}}}, "none"),
    ({"permission": "superuser", "role_name": "superuser"}, "none"),  # nothing known is nothing granted
])
def test_role_of(data, role):
    assert role_of(data) == role
