package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/controller/config"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// TestCharonConf: the shipped strongswan.conf (golden) serves VICI, for
// charon and for swanctl, on the socket dmvpnd dials by default, in the
// directory dmvpnd-charon.service creates, and never loads bypass-lan.
func TestCharonConf(t *testing.T) {
	got := CharonConf()
	path := filepath.Join("testdata", "strongswan.conf")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("strongswan.conf (-want +got):\n%s", diff)
	}
	if n := strings.Count(got, "socket = unix://"+config.DefaultViciSocket+"\n"); n != 2 {
		t.Errorf("the VICI socket %s appears %d times, want 2 (charon and swanctl)", config.DefaultViciSocket, n)
	}
	if strings.Contains(got, "bypass-lan") {
		t.Error("bypass-lan loaded: GRE between neighbours would skip IPsec")
	}
	unit, err := os.ReadFile("../systemd/dmvpnd-charon.service")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(config.DefaultViciSocket)
	for _, line := range []string{"RuntimeDirectory=" + filepath.Base(dir), "BindPaths=" + dir,
		"Environment=STRONGSWAN_CONF=/etc/dmvpnd/strongswan.conf"} {
		if !strings.Contains(string(unit), "\n"+line+"\n") {
			t.Errorf("dmvpnd-charon.service lacks %q", line)
		}
	}
}
