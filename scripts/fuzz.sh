#!/usr/bin/env bash
# Runs every fuzz target in the module for FUZZTIME each (default 10s): `make test` runs it briefly,
# `make fuzz` for longer. Fuzz targets are found by their `func FuzzXxx(f *testing.F)` declarations.
#
# Go 1.26's fuzz coordinator can end a run at the -fuzztime boundary with a bare
# "context deadline exceeded" and no failing input (golang/go#75804, fixed in Go 1.27). Such a run
# found nothing and is run once more; a run that writes a failing input, or fails in any other
# way, fails the script.
set -euo pipefail
fuzztime=${FUZZTIME:-10s}
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# fuzz_one runs one target; it returns 0 when it passed, 1 when it failed, 2 on the bare deadline.
fuzz_one() {
	local pkg=$1 fn=$2
	if go test "$pkg" -run '^$' -fuzz "^${fn}\$" -fuzztime "$fuzztime" 2>&1 | tee "$log"; then
		return 0
	fi
	if grep -q 'context deadline exceeded' "$log" && ! grep -qE 'Failing input written|panic:' "$log"; then
		return 2
	fi
	return 1
}

found=0
while IFS=: read -r file fn; do
	pkg=$(dirname "$file")
	echo "fuzz $pkg $fn ($fuzztime)"
	rc=0
	fuzz_one "$pkg" "$fn" || rc=$?
	if [ "$rc" -eq 2 ]; then
		echo "fuzz $pkg $fn: the run ended with a bare 'context deadline exceeded' and no failing input (golang/go#75804); running it again"
		rc=0
		fuzz_one "$pkg" "$fn" || rc=$?
	fi
	if [ "$rc" -ne 0 ]; then
		echo "fuzz $pkg $fn: FAILED"
		exit 1
	fi
	found=$((found + 1))
done < <(grep -rHoE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+' . | sed 's/func //' | sort)
echo "fuzz: ran $found targets"
