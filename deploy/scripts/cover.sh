#!/bin/sh
# Per-package unit-test coverage, then the controller's figure; fails when
# a test fails or the controller is below COVERMIN percent. Run by
# `make cover`; GO is the go command. The lab scenarios skip themselves
# (DMVPND_LAB_TESTS unset), so e2e counts only its unit tests.
set -eu
go=${GO:-go}
min=${COVERMIN:?}
pkg=github.com/dmvpnd/dmvpnd/controller
out=$(mktemp)
trap 'rm -f "$out"' EXIT

status=0
"$go" test -cover ./... > "$out" 2>&1 || status=$?
# "ok  <pkg> 1.2s coverage: 77.3% of statements", or "<pkg> coverage: 0.0%
# of statements" for a package without tests: package and figure.
awk '$1 == "ok" || $1 == "FAIL" || $1 == "---" || $2 == "coverage:" {
	pct = "-"
	for (i = 1; i <= NF; i++) if ($i == "coverage:") pct = $(i + 1)
	if ($1 == "ok") printf "  %-52s %s\n", $2, pct
	else if ($2 == "coverage:") printf "  %-52s %s (no tests)\n", $1, pct
	else print
}' "$out"
if [ "$status" -ne 0 ]; then
	grep -v '^ok ' "$out" | grep -v 'no test files' || true
	echo "cover: go test failed"
	exit "$status"
fi
got=$(awk -v p="$pkg" '$1 == "ok" && $2 == p { for (i = 1; i <= NF; i++) if ($i == "coverage:") { sub("%", "", $(i + 1)); print $(i + 1) } }' "$out")
if [ -z "$got" ]; then
	echo "cover: no coverage figure for $pkg"
	exit 1
fi
echo "controller coverage: $got% (minimum $min%)"
awk -v g="$got" -v m="$min" 'BEGIN { exit !(g + 0 >= m + 0) }' || {
	echo "cover: controller coverage $got% is below $min%"
	exit 1
}
