"""A simulated SGX platform: byte-exact DCAP v3 quotes under a SIMULATED root CA.

For machines without SGX (CI, the demo, the agent's ``sim`` backend). Everything a real platform and
Intel's PCS provide is generated here with the same structure: a root CA, a PCK Processor CA, a PCK
certificate carrying the real SGX extensions (OID 1.2.840.113741.1.13.1), a TCB signing certificate
that signs TCB info and QE identity JSON over the exact bytes, CRLs, and a quoting enclave whose
attestation key is bound by a QE report signed by the PCK key. Quotes therefore verify through the
same :func:`floodlight_trust.evidence.dcap.verify_quote` path as real ones, but only under
:meth:`TrustAnchor.unsafe_simulated`: they prove nothing about real hardware.

The modules: ``platform.py`` (:class:`SimulatedPlatform`: one machine, its collateral and quotes),
``certificates.py`` (the simulated PKI in Intel's profile), ``report_body.py`` (``sgx_report_body_t``),
``enclave_image.py`` (MRENCLAVE of an image), ``epid.py`` (the simulated EPID signature) and
``ias_service.py`` (a local IAS).
"""

from floodlight_trust.sgxsim.enclave_image import measure_enclave_image
from floodlight_trust.sgxsim.epid import SIM_EPID_BASENAME, verify_simulated_epid_signature
from floodlight_trust.sgxsim.platform import SimulatedPlatform
from floodlight_trust.sgxsim.report_body import encode_report_body

__all__ = [
    "SIM_EPID_BASENAME",
    "SimulatedPlatform",
    "encode_report_body",
    "measure_enclave_image",
    "verify_simulated_epid_signature",
]
