"""The scopes an API token can carry: the single list that the token service, the
API, the console and the database policies (through `perpetua.permits`) share.

A scope is `category:action`. It can only narrow what the token's creator may do in
their role: a token never reaches further than the person who made it.
"""

from __future__ import annotations

from perpetua.access.claims import Role

# The practice data a token may touch, and how; categories and actions are those
# of the permission matrix.
DATA_CATEGORIES = ("demographics", "schedule", "insurance", "calls", "audit_log")
DATA_ACTIONS = ("view", "create", "update", "delete", "export")

# Scopes for the practice's own record and its member list.
PRACTICE_SCOPES = ("practice:view", "members:view")

SCOPES: tuple[str, ...] = PRACTICE_SCOPES + tuple(
    f"{category}:{action}" for category in DATA_CATEGORIES for action in DATA_ACTIONS
)

# Clinical documents are never reachable by a token, whatever the role.
_NEVER = frozenset({"clinical"})

# Roles that may create tokens at all.
TOKEN_CREATORS: tuple[Role, ...] = ("owner", "manager")


def is_known(scope: str) -> bool:
    return scope in SCOPES and scope.split(":", 1)[0] not in _NEVER
