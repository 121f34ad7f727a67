"""The Verification Manager's certificate authority: issuing, revocation, CRL and OCSP."""
