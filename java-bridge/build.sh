#!/usr/bin/env bash
# Build the java-bridge jar with the JDK only (javac + jar, no third-party jars).
# Usage: java-bridge/build.sh [OUTPUT_JAR]   (default: java-bridge/build/ftrust-bridge.jar)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/build/ftrust-bridge.jar}"
command -v javac >/dev/null || { echo "build.sh: javac not found (install a JDK 11+)" >&2; exit 127; }
classes="$(mktemp -d)"
trap 'rm -rf "$classes"' EXIT
# --release 11: runs on the Java versions Floodlight deployments use (11+); Floodlight 1.2 itself needs 8+.
javac --release 11 -Xlint:all -Werror -d "$classes" $(find "$here/src" -name '*.java' | sort)
mkdir -p "$(dirname "$out")"
jar cf "$out.tmp.$$" -C "$classes" .
mv -f "$out.tmp.$$" "$out"
echo "$out"
