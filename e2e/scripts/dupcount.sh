#!/usr/bin/env bash
# dupcount.sh: count the repeated code the way issue 20 measures it.
# Product code (no _test.go, nothing under e2e/ or a *test package) and
# test code are copied into two trees with their import blocks blanked
# (an import list is not logic), and `duplicates` runs on each.
# Usage: e2e/scripts/dupcount.sh [--rows]   (from the repository root)
set -euo pipefail
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
git ls-files '*.go' | while read -r f; do
	case $f in
	*_test.go | e2e/* | */*test/* | */nhrpsim/*) side=test ;;
	*) side=product ;;
	esac
	mkdir -p "$out/$side/$(dirname "$f")"
	# Blank the import block but keep the line count, so rows point at
	# the real lines.
	awk '/^import \($/ {blank=1; print ""; next}
	     blank && /^\)$/ {blank=0; print ""; next}
	     blank || /^import "/ {print ""; next}
	     {print}' "$f" >"$out/$side/$f"
done
for side in product test; do
	res=$(cd "$out/$side" && duplicates --most 200 --seconds 300)
	pairs=$(grep -c '^D' <<<"$res" || true)
	boiler=$(grep -c '^D.* boilerplate' <<<"$res" || true)
	echo "$side: $pairs pairs ($boiler boilerplate) — $(head -1 <<<"$res")"
	if [[ ${1:-} == --rows ]]; then
		grep '^D\|^(+\|^left\|^incomplete' <<<"$res"
	fi
done
