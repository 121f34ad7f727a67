#!/usr/bin/env bash
# Build the java-bridge with the JDK only (javac + jar, no third-party jars): the bridge tools and
# the floodlight-trust trust provider (src/). With FLOODLIGHT_HOME set (an operator's Floodlight
# 1.2: floodlight.jar or target/floodlight.jar, and lib/), also the Floodlight module
# (floodlight/src) as ftrust-floodlight.jar next to OUTPUT_JAR; without it, says what it skipped.
# Usage: java-bridge/build.sh [OUTPUT_JAR]   (default: java-bridge/build/ftrust-bridge.jar)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/build/ftrust-bridge.jar}"
command -v javac >/dev/null || { echo "build.sh: javac not found (install a JDK 17+)" >&2; exit 127; }
classes="$(mktemp -d)"
trap 'rm -rf "$classes"' EXIT
# --release 17: the JDK this project runs Floodlight 1.2 and the endpoint on (docs/floodlight.md).
javac --release 17 -Xlint:all -Werror -d "$classes/jdk" $(find "$here/src" -name '*.java' | sort)
mkdir -p "$(dirname "$out")"
jar cf "$out.tmp.$$" -C "$classes/jdk" .
mv -f "$out.tmp.$$" "$out"
echo "$out"

module_out="$(dirname "$out")/ftrust-floodlight.jar"
if [ -z "${FLOODLIGHT_HOME:-}" ]; then
    echo "build.sh: FLOODLIGHT_HOME is not set: skipped the Floodlight module (java-bridge/floodlight/)" >&2
    exit 0
fi
fl_jar=""
for candidate in "$FLOODLIGHT_HOME/target/floodlight.jar" "$FLOODLIGHT_HOME/floodlight.jar"; do
    if [ -f "$candidate" ]; then fl_jar="$candidate"; break; fi
done
if [ -z "$fl_jar" ] || [ ! -d "$FLOODLIGHT_HOME/lib" ]; then
    echo "build.sh: FLOODLIGHT_HOME=$FLOODLIGHT_HOME has no floodlight.jar (or target/floodlight.jar) and lib/" >&2
    exit 2
fi
cp="$out:$fl_jar:$FLOODLIGHT_HOME/lib/*"
javac --release 17 -Xlint:all,-path,-options,-classfile,-processing -Werror -cp "$cp" -d "$classes/fl" \
    $(find "$here/floodlight/src" -name '*.java' | sort)
cp -r "$here/floodlight/resources/." "$classes/fl/"
jar cf "$module_out.tmp.$$" -C "$classes/fl" .
mv -f "$module_out.tmp.$$" "$module_out"
echo "$module_out"
