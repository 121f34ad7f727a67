"""The HTTP(S) server plumbing every listener shares (the VM's API and CRL/OCSP port, the agent, the
simulated IAS, test peers): ``server.py`` (JSON application, asyncio server, TLS context, timeouts)
and ``peer_json.py`` (bounded JSON from a peer, for servers and clients alike)."""
