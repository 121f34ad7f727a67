"""The shell's clients of what lies outside the process: Intel's services and the files evidence
arrives in. The pure core (``evidence/``, ``policy_lang/``) never imports this package.

- ``httpclient.py``: the one HTTP client stack (urllib3) every client here and the VM/agent JSON
  clients use.
- ``ias.py``: the IAS API v4/v5 client (EPID quotes); the report it returns is verified by
  :func:`floodlight_trust.evidence.ias.verify_report`.
- ``pcs.py``: the PCS v4 / PCCS client for DCAP collateral, cached on disk until each document's
  nextUpdate.
- ``collateral_files.py``: DCAP collateral from a dcap-qvl JSON file or a directory of PCS responses.
"""
