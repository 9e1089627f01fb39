package golden

import (
	"os"
	"path/filepath"
	"testing"
)

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	failed, fatal bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Errorf(string, ...any) { r.failed = true }
func (r *recorder) Fatal(...any)          { r.fatal = true; panic(r) }
func (r *recorder) Fatalf(string, ...any) { r.fatal = true; panic(r) }

func check(t *testing.T, path, got string) (equal bool, rec *recorder) {
	rec = &recorder{TB: t}
	defer func() {
		if p := recover(); p != nil && p != rec {
			panic(p)
		}
	}()
	return Check(rec, path, got), rec
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "x.golden")

	if _, rec := check(t, path, "a\n"); !rec.fatal {
		t.Error("a missing golden file did not fail the test")
	}

	*Update = true
	eq, rec := check(t, path, "a\n")
	*Update = false
	if !eq || rec.failed || rec.fatal {
		t.Fatalf("-update: equal %v, failed %v, fatal %v", eq, rec.failed, rec.fatal)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "a\n" {
		t.Fatalf("-update wrote %q, %v", b, err)
	}

	if eq, rec := check(t, path, "a\n"); !eq || rec.failed {
		t.Errorf("same content: equal %v, failed %v", eq, rec.failed)
	}
	if eq, rec := check(t, path, "b\n"); eq || !rec.failed || rec.fatal {
		t.Errorf("other content: equal %v, failed %v, fatal %v", eq, rec.failed, rec.fatal)
	}
	if b, _ := os.ReadFile(path); string(b) != "a\n" {
		t.Errorf("a comparison rewrote the file: %q", b)
	}
}
