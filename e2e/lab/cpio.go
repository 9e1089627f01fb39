package lab

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// cpio file modes (the st_mode bits of the newc format).
const (
	modeDir     = 0o040000
	modeFile    = 0o100000
	modeSymlink = 0o120000
)

// archiveEntry is one member of an initramfs archive.
type archiveEntry struct {
	Name string // path without leading slash, e.g. "bin/busybox"
	Mode uint32 // type bits | permission bits
	Data []byte // file content or symlink target
}

// archive is an in-memory initramfs: entries keyed by path.
type archive struct {
	entries map[string]archiveEntry
}

func newArchive() *archive { return &archive{entries: map[string]archiveEntry{}} }

// dir adds a directory and its parents.
func (a *archive) dir(name string) {
	name = strings.Trim(name, "/")
	if name == "" || name == "." {
		return
	}
	if i := strings.LastIndex(name, "/"); i > 0 {
		a.dir(name[:i])
	}
	if _, ok := a.entries[name]; !ok {
		a.entries[name] = archiveEntry{Name: name, Mode: modeDir | 0o755}
	}
}

func (a *archive) parent(name string) {
	if i := strings.LastIndex(name, "/"); i > 0 {
		a.dir(name[:i])
	}
}

// file adds a regular file (and its parent directories).
func (a *archive) file(name string, perm uint32, data []byte) {
	name = strings.Trim(name, "/")
	a.parent(name)
	a.entries[name] = archiveEntry{Name: name, Mode: modeFile | perm, Data: data}
}

// symlink adds a symbolic link name -> target.
func (a *archive) symlink(name, target string) {
	name = strings.Trim(name, "/")
	a.parent(name)
	a.entries[name] = archiveEntry{Name: name, Mode: modeSymlink | 0o777, Data: []byte(target)}
}

// names lists the archive's paths sorted.
func (a *archive) names() []string {
	out := make([]string, 0, len(a.entries))
	for n := range a.entries {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// writeTo writes the archive as a newc ("070701") cpio stream. Entries are
// written in sorted order, so parents precede children, with fixed
// timestamps and inode numbers: the same archive gives the same bytes.
func (a *archive) writeTo(w io.Writer) error {
	ino := uint32(1)
	for _, n := range a.names() {
		e := a.entries[n]
		nlink := uint32(1)
		if e.Mode&0o170000 == modeDir {
			nlink = 2
		}
		if err := writeCpioEntry(w, ino, e.Mode, nlink, e.Name, e.Data); err != nil {
			return err
		}
		ino++
	}
	return writeCpioEntry(w, 0, 0, 1, "TRAILER!!!", nil)
}

func writeCpioEntry(w io.Writer, ino, mode, nlink uint32, name string, data []byte) error {
	// newc header: magic + 13 eight-digit hex fields.
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	buf := make([]byte, 0, len(hdr)+len(name)+8+len(data)+4)
	buf = append(buf, hdr...)
	buf = append(buf, name...)
	buf = append(buf, 0)
	buf = pad4(buf)
	buf = append(buf, data...)
	buf = pad4(buf)
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("lab: write cpio: %w", err)
	}
	return nil
}

// pad4 pads b with zeros to a multiple of four bytes. Header (110 bytes)
// plus name and data each align independently in newc, and since every
// entry starts aligned, padding the running entry buffer is equivalent.
func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}
