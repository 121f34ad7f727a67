"""The container-host agent: serves host and VNF-enclave evidence to the VM and installs credentials."""
