#!/usr/bin/env bash
# Runs weft's whole-fabric benchmarks (`make bench`): installs iperf3 and ethtool when missing, builds
# bin/weft-bench and runs it as root with the binaries in bin/. BENCH_OUT is the JSON results file;
# extra arguments go to weft-bench (see `bin/weft-bench -h`, and docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${BENCH_OUT:-/tmp/weft-bench.json}
if [ "$(id -u)" != 0 ]; then
	echo "bench: builds network namespaces and runs weftd: run it as root (sudo make bench)" >&2
	exit 1
fi
missing=()
for tool in iperf3 ethtool; do
	command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "bench: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q "${missing[@]}" >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
fi
go build -o bin/weft-bench ./cmd/weft-bench
exec ./bin/weft-bench -bin-dir bin -conflist etc/10-weft.conflist -out "$out" "$@"
