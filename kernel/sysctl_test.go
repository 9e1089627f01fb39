package kernel

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeProc builds a /proc/sys-like tree with the given files.
func fakeProc(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for k, v := range files {
		p := filepath.Join(root, filepath.FromSlash(k))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func readTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[filepath.ToSlash(rel)] = strings.TrimSpace(string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// recordingSysctl wraps a SysctlWriter and records writes.
type recordingSysctl struct {
	SysctlWriter
	writes []string
}

func (r *recordingSysctl) WriteSysctl(k, v string) error {
	r.writes = append(r.writes, k+"="+v)
	return r.SysctlWriter.WriteSysctl(k, v)
}

func TestApplyTunnelSysctls(t *testing.T) {
	root := fakeProc(t, map[string]string{
		"net/ipv4/neigh/gre1/app_solicit":   "0",
		"net/ipv4/neigh/gre1/ucast_solicit": "3",
		"net/ipv4/neigh/gre1/mcast_solicit": "0", // already right: not written
		"net/ipv4/conf/gre1/send_redirects": "1",
		"net/ipv4/conf/all/send_redirects":  "1",
		"net/ipv4/conf/eth0/send_redirects": "1", // untouched
	})
	rec := &recordingSysctl{SysctlWriter: ProcSysctl{Root: root}}
	if err := applySysctls(rec, tunnelSysctls("gre1")); err != nil {
		t.Fatal(err)
	}
	wantWrites := []string{
		"net/ipv4/neigh/gre1/app_solicit=1",
		"net/ipv4/neigh/gre1/ucast_solicit=0",
		"net/ipv4/conf/gre1/send_redirects=0",
		"net/ipv4/conf/all/send_redirects=0",
	}
	if d := cmp.Diff(wantWrites, rec.writes); d != "" {
		t.Errorf("writes (-want +got):\n%s", d)
	}
	want := map[string]string{
		"net/ipv4/neigh/gre1/app_solicit":   "1",
		"net/ipv4/neigh/gre1/ucast_solicit": "0",
		"net/ipv4/neigh/gre1/mcast_solicit": "0",
		"net/ipv4/conf/gre1/send_redirects": "0",
		"net/ipv4/conf/all/send_redirects":  "0",
		"net/ipv4/conf/eth0/send_redirects": "1",
	}
	if d := cmp.Diff(want, readTree(t, root)); d != "" {
		t.Errorf("tree (-want +got):\n%s", d)
	}
	// Second run: nothing to write.
	rec.writes = nil
	if err := applySysctls(rec, tunnelSysctls("gre1")); err != nil {
		t.Fatal(err)
	}
	if len(rec.writes) != 0 {
		t.Errorf("second apply wrote %v, want nothing", rec.writes)
	}
}

func TestProcSysctlErrors(t *testing.T) {
	root := fakeProc(t, map[string]string{"net/ipv4/ip_forward": "0"})
	p := ProcSysctl{Root: root}
	// A sysctl that does not exist is an error, never created.
	err := p.WriteSysctl("net/ipv4/neigh/gre9/app_solicit", "1")
	if err == nil || !strings.Contains(err.Error(), "kernel: write sysctl net/ipv4/neigh/gre9/app_solicit=1") {
		t.Errorf("write of missing sysctl: err = %v", err)
	}
	if _, statErr := os.Stat(filepath.Join(root, "net/ipv4/neigh/gre9/app_solicit")); statErr == nil {
		t.Error("missing sysctl was created")
	}
	for _, bad := range []string{"", "/etc/passwd", "net/../../etc/passwd"} {
		if err := p.WriteSysctl(bad, "1"); err == nil {
			t.Errorf("WriteSysctl(%q) succeeded", bad)
		}
		if _, err := p.ReadSysctl(bad); err == nil {
			t.Errorf("ReadSysctl(%q) succeeded", bad)
		}
	}
	got, err := p.ReadSysctl("net/ipv4/ip_forward")
	if err != nil || got != "0" {
		t.Errorf("ReadSysctl = %q, %v", got, err)
	}
}

func TestSizeNeighborTable(t *testing.T) {
	tests := []struct {
		name  string
		peers int
		have  [3]string
		want  map[string]string
	}{
		{
			name:  "kernel defaults raised for 10000 peers",
			peers: 10000,
			have:  [3]string{"128", "512", "1024"},
			want:  map[string]string{"1": "11024", "2": "22048", "3": "44096"},
		},
		{
			name:  "higher admin values kept",
			peers: 10,
			have:  [3]string{"5000", "9000", "100000"},
			want:  map[string]string{"1": "5000", "2": "9000", "3": "100000"},
		},
		{
			name:  "mixed",
			peers: 100,
			have:  [3]string{"128", "8000", "1024"},
			want:  map[string]string{"1": "1124", "2": "8000", "3": "4496"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{}
			for i, v := range tt.have {
				files["net/ipv4/neigh/default/gc_thresh"+string(rune('1'+i))] = v
			}
			root := fakeProc(t, files)
			if err := SizeNeighborTable(ProcSysctl{Root: root}, tt.peers); err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for k, v := range readTree(t, root) {
				got[strings.TrimPrefix(k, "net/ipv4/neigh/default/gc_thresh")] = v
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("gc_thresh (-want +got):\n%s", d)
			}
		})
	}
	root := fakeProc(t, map[string]string{"net/ipv4/neigh/default/gc_thresh1": "garbage"})
	if err := SizeNeighborTable(ProcSysctl{Root: root}, 1); err == nil {
		t.Error("garbage sysctl value accepted")
	}
}
