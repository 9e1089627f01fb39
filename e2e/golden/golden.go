// Package golden compares what a test renders with a file checked in under
// testdata/, or rewrites the file when the tests run with -update. It is
// the one golden-file helper of the repository's tests (unit and lab), so
// that -update means the same in every package:
//
//	go test ./kernel -update   # then read the diff before committing
//
// It lives under e2e/ because the top-level layout is fixed and nhrp/ must
// not import os; it imports nothing from the project, so any package's
// tests may use it without an import cycle.
package golden

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Update is -update: rewrite the golden files instead of comparing. Tests
// whose fixtures are more than one file (a corpus, a PKI) read it too.
var Update = flag.Bool("update", false, "rewrite the golden files (testdata/) instead of comparing")

// Check compares got with the file at path (relative to the package under
// test, like testdata/x.golden) and reports whether they are equal; with
// -update it writes got there first, creating the directory. A missing
// file fails the test at once, a difference fails it with a "(-want +got)"
// diff.
func Check[T ~string | ~[]byte](t testing.TB, path string, got T) bool {
	t.Helper()
	if *Update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden: %v (run go test with -update to create it)", err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("%s differs (-want +got; go test -update rewrites it):\n%s", path, d)
		return false
	}
	return true
}

// File is Check of testdata/name.
func File[T ~string | ~[]byte](t testing.TB, name string, got T) bool {
	t.Helper()
	return Check(t, filepath.Join("testdata", name), got)
}
