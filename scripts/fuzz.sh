#!/usr/bin/env bash
# Runs every native fuzz target of the module for a short time each, starting
# from its seed corpus under testdata/fuzz. Usage: scripts/fuzz.sh [FUZZTIME]
set -euo pipefail
fuzztime=${1:-3s}
cd "$(dirname "$0")/.."

count=0
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	targets=$(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u || true)
	for t in $targets; do
		echo "fuzz $pkg $t ($fuzztime)"
		go test -run '^$' -fuzz "^${t}\$" -fuzztime "$fuzztime" "$pkg"
		count=$((count + 1))
	done
done
echo "fuzz: $count targets ran"
