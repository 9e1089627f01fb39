#!/bin/sh
# Fail on code nothing reaches, with golang.org/x/tools/cmd/deadcode. Run by
# `make lint`; DEADCODE is the pinned binary.
#
# 1. From the binaries alone (tests do not count): product code that only
#    tests call is dead API. Test-support packages (fakes, simulators, the
#    lab) exist for tests and are skipped; deploy/scripts/deadcode.allow
#    lists the rest that stays on purpose, one "file function" with a reason.
# 2. From the binaries and the tests: code not even a test reaches,
#    anywhere (test-support packages included).
#
# deadcode's reachability (RTA) treats every method of a type that reaches
# an interface or reflection as live, so it misses some dead methods; what
# it reports is always dead.
set -eu
dc=${DEADCODE:?}
allow=$(dirname "$0")/deadcode.allow
support='^(e2e/|[^:]*/(kerneltest|ipsectest|vicitest|routingtest|apitest|nhrpsim|nhrpcaptest)/)'
status=0

# "file:line:col: unreachable func: Name" -> "file Name", minus the allowed.
report() {
	sed -n 's/^\([^:]*\):[0-9]*:[0-9]*: unreachable func: \(.*\)$/\1 \2/p' |
		grep -Ev "$1" |
		grep -vxF -f "$tmp/allow" || true
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -e 's/[[:space:]]*#.*//' -e '/^[[:space:]]*$/d' "$allow" > "$tmp/allow"

"$dc" ./... > "$tmp/bin" 2>&1 || { cat "$tmp/bin"; exit 1; }
out=$(report "$support" < "$tmp/bin")
if [ -n "$out" ]; then
	echo "deadcode: product code only tests reach (remove it, or list it with a reason in $allow):"
	echo "$out" | sed 's/^/  /'
	status=1
fi

"$dc" -test ./... > "$tmp/test" 2>&1 || { cat "$tmp/test"; exit 1; }
out=$(report '^$' < "$tmp/test")
if [ -n "$out" ]; then
	echo "deadcode: code nothing reaches, not even a test:"
	echo "$out" | sed 's/^/  /'
	status=1
fi

# An entry that no longer matches anything is stale.
sed -n 's/^\([^:]*\):[0-9]*:[0-9]*: unreachable func: \(.*\)$/\1 \2/p' "$tmp/bin" > "$tmp/found"
stale=$(grep -vxF -f "$tmp/found" "$tmp/allow" || true)
if [ -n "$stale" ]; then
	echo "deadcode: stale entries in $allow (reachable now, or gone):"
	echo "$stale" | sed 's/^/  /'
	status=1
fi
exit $status
