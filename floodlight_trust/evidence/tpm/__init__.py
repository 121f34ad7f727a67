"""TPM 2.0 evidence: quotes (TPMS_ATTEST), signatures, public areas, PCR values, their verification
against an attestation key, the nonce and the IMA list, and the attestation-key trust at
registration (EK certificates, MakeCredential). Pure core: bytes, keys and roots in, values out.
"""
