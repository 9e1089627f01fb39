#!/bin/sh
# Runs every native Go fuzz target in the module for $1 each: a duration
# (60s) or a number of executions (50000x; see SHORTFUZZ in the Makefile).
# Targets are found by name (func FuzzX(f *testing.F)) in *_test.go files.
set -eu
t=${1:-5s}
n=0
for file in $(git ls-files '*_test.go'); do
	for f in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(f \*testing\.F).*/\1/p' "$file"); do
		dir=./$(dirname "$file")
		echo "fuzz: $dir $f ($t)"
		go test -run='^$' -fuzz="^$f\$" -fuzztime="$t" "$dir"
		n=$((n + 1))
	done
done
echo "fuzz: $n targets ran for $t each"
