#!/usr/bin/env bash
# The TPM anchoring's tests, demo step and sim backend need swtpm (a simulated TPM 2.0), its setup
# tools and tpm2-tools. Install Debian's when missing and we may (root with apt-get); otherwise say
# what to install: the TPM tests then say plainly that they are skipped (under CI they fail instead).
set -euo pipefail
need=()
command -v swtpm >/dev/null 2>&1 || need+=(swtpm)
command -v swtpm_setup >/dev/null 2>&1 || need+=(swtpm-tools)
command -v tpm2_quote >/dev/null 2>&1 || need+=(tpm2-tools)
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q "${need[@]}"
    exit 0
fi
echo "floodlight-trust: the TPM tests need ${need[*]}: e.g. sudo apt-get install ${need[*]}" >&2
exit 0
