#!/bin/sh
# Build both binaries twice, from this checkout and from a copy of it at
# another path with its own Go build cache, and fail unless the results are
# byte-identical. Run by `make reproducible`; VERSION, COMMIT and the build
# flags come from the Makefile through the environment.
set -eu
cache=${CACHE:?}/repro
rm -rf "$cache/src" "$cache/a" "$cache/b"
mkdir -p "$cache/src" "$cache/a" "$cache/b" "$cache/gocache"
git ls-files -co --exclude-standard -z | xargs -0 tar -cf - | tar -xf - -C "$cache/src"
${GO:-go} build $GOBUILDFLAGS -ldflags "$LDFLAGS" -o "$cache/a/" ./cmd/...
(cd "$cache/src" && GOCACHE="$cache/gocache" ${GO:-go} build $GOBUILDFLAGS -ldflags "$LDFLAGS" -o "$cache/b/" ./cmd/...)
status=0
for f in dmvpnd dmvpnctl; do
	a=$(sha256sum < "$cache/a/$f" | cut -d' ' -f1)
	b=$(sha256sum < "$cache/b/$f" | cut -d' ' -f1)
	if [ "$a" = "$b" ]; then
		echo "reproducible: $f $a"
	else
		echo "NOT reproducible: $f $a (here) != $b ($cache/src)" >&2
		status=1
	fi
done
exit $status
