#!/usr/bin/env bash
# The java-bridge and keystore checks need a JDK (javac, java, keytool). Install Debian's when it is
# missing and we may (root with apt-get); otherwise say exactly what to install.
set -euo pipefail
if command -v javac >/dev/null 2>&1 && command -v keytool >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q openjdk-17-jdk-headless
    exit 0
fi
echo "floodlight-trust needs a JDK (javac, keytool): e.g. sudo apt-get install openjdk-17-jdk-headless" >&2
exit 1
