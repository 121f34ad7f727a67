"""What the test files share: one home each, imported from here, never from a conftest or a test module.

- ``cli``: ``ftrust()``, the real CLI in a child process; ``ftrust_command()`` for servers.
- ``world``: a deployment on loopback (CA, VM with its HTTPS API, CRL/OCSP, sim-backend agents) and the
  admin's CLI against it; ``deployment``: the VM in process (no HTTP) or as ``vm serve``.
- ``attacks``: what an attack changed (rows, CRL, OCSP, metrics) and an attacker's slow clients.
- ``pcs``: one fake PCS/PCCS; ``tls``: self-signed server identities.
- ``floodlight``: the Java bridge fixture, a test VNF CA, client certificates, Floodlight's keystore;
  ``plugin``: the controller-side plugin's deployment.
- ``requires``: a part the machine lacks (skipped with the reason; a failure under CI).
- ``enclaves``: VNF enclaves as processes; ``tpm``: swtpm fixtures and a simulated kernel;
  ``tpm_hosts``: a container host anchored in swtpm; ``postgres``: a throwaway PostgreSQL cluster.

Fixtures for every test directory are registered by tests/conftest.py (``pytest_plugins``).
"""
