"""Translation between the three wire formats: the seam where issue 4 plugs in.

Today only the identity exists: a route serves a client format its provider speaks natively.
Routing asks `upstream_format` which format to send a route in (None: the route cannot serve
this client); failover sends the body in that format. A translator for a (client, upstream)
pair will map the request, the answer and each stream event here, without touching routing.
"""

from __future__ import annotations

from router.config import Format


def upstream_format(client: Format, spoken: tuple[Format, ...]) -> Format | None:
    """The format to send upstream for a `client` request to a provider speaking `spoken`."""
    # TODO(issue 4): when `client` is not spoken, return a spoken format that has a translator.
    return client if client in spoken else None
