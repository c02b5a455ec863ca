"""The egress proxy: the sandbox's allow-listed way to the network (docs/sandbox.md, "Egress").

One Unix socket per job, bind-mounted into the job's container and forwarded inside to
127.0.0.1:<port> like the model gateway's; HTTP_PROXY points there. CONNECT tunnels TLS (the
proxy never sees the plaintext), plain HTTP is forwarded from absolute-form URIs. Every request is
checked against the job's allow-list (app/domain/egress.py) and the address it resolves to
(addresses.py), logged, and refused with a 403 that says why.
"""

from .addresses import AddressClass, classify
from .policy import EgressPolicy
from .proxy import EgressChannel, EgressLimits, EgressProxy
from .records import EgressLog, EgressRecord

__all__ = [
    "AddressClass",
    "EgressChannel",
    "EgressLimits",
    "EgressLog",
    "EgressPolicy",
    "EgressProxy",
    "EgressRecord",
    "classify",
]
