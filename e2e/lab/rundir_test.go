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

// TestCacheDirResolvesSymlink: a worktree whose .cache is an absolute
// symlink gets the target's path, which the guest's initramfs can reach.
func TestCacheDirResolvesSymlink(t *testing.T) {
	base := t.TempDir()
	target := filepath.Join(base, "main", ".cache")
	wt := filepath.Join(base, "wt")
	for _, d := range []string{target, wt} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(target, filepath.Join(wt, ".cache")); err != nil {
		t.Fatal(err)
	}
	want, err := filepath.EvalSymlinks(target)
	if err != nil {
		t.Fatal(err)
	}
	if got := cacheDir(wt); got != want {
		t.Errorf("cacheDir(worktree) = %s, want %s", got, want)
	}
	// Without a .cache yet (first run), the plain path.
	if got, want := cacheDir(filepath.Join(base, "fresh")), filepath.Join(base, "fresh", ".cache"); got != want {
		t.Errorf("cacheDir(fresh) = %s, want %s", got, want)
	}
}
