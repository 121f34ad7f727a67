"""floodlight-trust: attestation-gated access to the Floodlight controller's REST API."""

from __future__ import annotations

__version__ = "0.1.0"
