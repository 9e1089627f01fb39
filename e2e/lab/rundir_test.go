package lab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNewRunDir(t *testing.T) {
	runs := t.TempDir()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var dirs []string
	for i := range keepRuns + 2 {
		d, err := newRunDir(runs, "TestX/sub case", now.Add(time.Duration(i)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if strings.ContainsAny(filepath.Base(d), " /,") {
			t.Errorf("unsafe dir name %q", d)
		}
		dirs = append(dirs, d)
	}
	left, _ := filepath.Glob(filepath.Join(runs, "TestX_sub_case-2*"))
	if len(left) != keepRuns {
		t.Errorf("%d runs kept, want %d: %v", len(left), keepRuns, left)
	}
	if _, err := os.Stat(dirs[0]); !os.IsNotExist(err) {
		t.Errorf("oldest run %s not pruned", dirs[0])
	}
	target, err := os.Readlink(filepath.Join(runs, "TestX_sub_case.latest"))
	if err != nil || target != filepath.Base(dirs[len(dirs)-1]) {
		t.Errorf("latest -> %q, %v; want %q", target, err, filepath.Base(dirs[len(dirs)-1]))
	}
}
