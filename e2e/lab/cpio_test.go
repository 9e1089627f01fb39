package lab

import (
	"bytes"
	"fmt"
	"os/exec"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// readCpio parses a newc stream back into entries (test helper).
func readCpio(b []byte) ([]archiveEntry, error) {
	var out []archiveEntry
	off := 0
	align := func(n int) int { return (n + 3) &^ 3 }
	for {
		if off+110 > len(b) {
			return nil, fmt.Errorf("short header at %d", off)
		}
		h := b[off : off+110]
		if string(h[:6]) != "070701" {
			return nil, fmt.Errorf("bad magic at %d", off)
		}
		field := func(i int) int {
			v, _ := strconv.ParseUint(string(h[6+8*i:14+8*i]), 16, 32)
			return int(v)
		}
		mode, size, nameSize := field(1), field(6), field(11)
		nameStart := off + 110
		if nameStart+nameSize > len(b) {
			return nil, fmt.Errorf("short name at %d", off)
		}
		name := string(b[nameStart : nameStart+nameSize-1])
		dataStart := align(nameStart + nameSize)
		if dataStart+size > len(b) {
			return nil, fmt.Errorf("short data at %d", off)
		}
		if name == "TRAILER!!!" {
			return out, nil
		}
		out = append(out, archiveEntry{Name: name, Mode: uint32(mode), Data: b[dataStart : dataStart+size]})
		off = align(dataStart + size)
	}
}

func TestArchiveRoundTrip(t *testing.T) {
	a := newArchive()
	a.file("bin/busybox", 0o755, []byte("BB"))
	a.symlink("bin/sh", "busybox")
	a.file("init", 0o755, []byte("#!/bin/sh\n"))
	a.dir("dev")
	var buf bytes.Buffer
	if err := a.writeTo(&buf); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d not 4-aligned", buf.Len())
	}
	got, err := readCpio(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	want := []archiveEntry{
		{Name: "bin", Mode: modeDir | 0o755},
		{Name: "bin/busybox", Mode: modeFile | 0o755, Data: []byte("BB")},
		{Name: "bin/sh", Mode: modeSymlink | 0o777, Data: []byte("busybox")},
		{Name: "dev", Mode: modeDir | 0o755},
		{Name: "init", Mode: modeFile | 0o755, Data: []byte("#!/bin/sh\n")},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b []byte) bool { return bytes.Equal(a, b) })); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}

	// Cross-check with the system cpio when it is installed.
	cpio, err := exec.LookPath("cpio")
	if err != nil {
		t.Skip("cpio not installed")
	}
	cmd := exec.Command(cpio, "-t", "--quiet")
	cmd.Stdin = bytes.NewReader(buf.Bytes())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio -t: %v", err)
	}
	if diff := cmp.Diff("bin\nbin/busybox\nbin/sh\ndev\ninit\n", string(out)); diff != "" {
		t.Errorf("cpio -t (-want +got):\n%s", diff)
	}
}
