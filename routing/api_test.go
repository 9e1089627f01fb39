package routing

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPrepareAPIListener(t *testing.T) {
	dir := t.TempDir()

	if err := prepareAPIListener(""); err != nil {
		t.Errorf("empty API: %v", err)
	}
	// Missing socket: nothing to do.
	if err := prepareAPIListener("unix://" + filepath.Join(dir, "none.sock")); err != nil {
		t.Errorf("missing socket: %v", err)
	}
	// Stale socket (listener gone, file left): removed.
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if err := prepareAPIListener("unix://" + stale); err != nil {
		t.Errorf("stale socket: %v", err)
	}
	if _, err := os.Lstat(stale); !os.IsNotExist(err) {
		t.Errorf("stale socket not removed: %v", err)
	}
	// Live socket: refused, left alone.
	live := filepath.Join(dir, "live.sock")
	ll, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer ll.Close()
	if err := prepareAPIListener("unix://" + live); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("live socket: err = %v, want in use", err)
	}
	// Regular file: refused, left alone.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := prepareAPIListener("unix://" + file); err == nil {
		t.Error("regular file accepted as socket path")
	}
	if _, err := os.Stat(file); err != nil {
		t.Errorf("regular file touched: %v", err)
	}
	// TCP port in use: refused.
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	if err := prepareAPIListener(tl.Addr().String()); err == nil || !strings.HasPrefix(err.Error(), "routing: ") {
		t.Errorf("busy TCP port: err = %v", err)
	}
}
