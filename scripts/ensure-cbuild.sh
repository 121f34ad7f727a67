#!/usr/bin/env bash
# The package's one C module (floodlight_trust/evidence/ima/_bulkhash.c, see setup.py) is compiled
# by `pip install -e .`: it needs a C compiler and libcrypto's headers (the Python headers come with
# the interpreter). Install Debian's when missing and we may (root with apt-get); otherwise say what
# to install: without them the module is not built and the IMA appraisal runs its Python reference.
set -euo pipefail
need=()
command -v gcc >/dev/null 2>&1 || need+=(gcc)
[ -e /usr/include/openssl/sha.h ] || need+=(libssl-dev)
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q "${need[@]}"
    exit 0
fi
echo "floodlight-trust: the native IMA hashing needs ${need[*]}: e.g. sudo apt-get install ${need[*]}" >&2
exit 0
