"""The Verification Manager: nonces, state, audit, the attestation workflow and its HTTPS service."""
