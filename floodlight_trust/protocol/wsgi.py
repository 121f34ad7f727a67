"""Former home of the HTTP plumbing, kept as an import path for branches in flight.

The server is no longer WSGI (see :mod:`floodlight_trust.protocol.http` for why); import from there.
"""

from floodlight_trust.protocol.http import (  # noqa: F401
    HttpError,
    HttpServer,
    JsonApp,
    RawResponse,
    Request,
    StreamingResponse,
    Timeouts,
)
