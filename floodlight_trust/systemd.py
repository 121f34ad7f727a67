"""systemd's service notification (``Type=notify``): tell the manager the listeners are up.

The protocol is one datagram on the AF_UNIX socket named by ``$NOTIFY_SOCKET`` (sd_notify(3)); a
leading ``@`` names an abstract socket. Without the variable (not under systemd) nothing happens.
"""

from __future__ import annotations

import os
import socket


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``READY=1``, ``STOPPING=1``); True when a manager was told."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or not (address.startswith("/") or address.startswith("@")):
        return False
    target = "\0" + address[1:] if address.startswith("@") else address
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.connect(target)
            sock.sendall(state.encode())
        except OSError:
            return False
    return True
