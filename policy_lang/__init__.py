"""The floodlight-trust policy language: which hosts and VNF enclaves may enroll.

It judges typed claims (``floodlight_trust.claims``) and knows nothing of evidence bytes.
"""

from __future__ import annotations
