#!/usr/bin/env bash
# Runs every fuzz target in the module for FUZZTIME each (default 10s): `make test` runs it briefly,
# `make fuzz` for longer. Fuzz targets are found by their `func FuzzXxx(f *testing.F)` declarations.
set -euo pipefail
fuzztime=${FUZZTIME:-10s}
cd "$(dirname "$0")/.."
found=0
while IFS=: read -r file fn; do
	pkg=$(dirname "$file")
	echo "fuzz $pkg $fn ($fuzztime)"
	go test "$pkg" -run '^$' -fuzz "^${fn}\$" -fuzztime "$fuzztime"
	found=$((found + 1))
done < <(grep -rHoE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+' . | sed 's/func //' | sort)
echo "fuzz: ran $found targets"
