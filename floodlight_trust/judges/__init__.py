"""The Verification Manager's judges: pure decisions over typed evidence.

A judge takes parsed evidence (``protocol.evidence``), the records it needs as values (a host's
record, the nonce's record, a VNF's registration), the policy, the trust settings and the time,
and returns a frozen verdict with every reason. It opens no file, database or socket and reads no
clock; the manager (``manager/``) gathers its inputs, and acts on the verdict (records, issues,
revokes). Enrollment, re-attestation and ``reload-policy`` call the same judges.

Each judge is a list of small named checks (sigstore-python's ``AllOf``): every check whose inputs
exist runs and reports; none stops the others. Checks run in stages where a later stage needs what
an earlier one established: the quote is verified only for a fresh nonce (a stranger's replay buys
no DCAP or IAS work), and an IMA list is appraised only once the quote that binds it verified.

- :mod:`~floodlight_trust.judges.protocol`: nonce, quote outcome, the ``Judgement`` builder.
- :mod:`~floodlight_trust.judges.platform`: a host stays on its platform; a VNF enrolls from it.
- :mod:`~floodlight_trust.judges.host`: :func:`~floodlight_trust.judges.host.judge_host`.
- :mod:`~floodlight_trust.judges.enrollment`: :func:`~floodlight_trust.judges.enrollment.judge_enrollment`.
"""
