"""Evidence: parse and verify attestation evidence into claims."""
