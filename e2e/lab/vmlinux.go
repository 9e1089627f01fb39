package lab

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// xzMagic starts an xz stream; Debian's bzImage carries the kernel as one.
var xzMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}

// xenElfnotePhys32Entry is the ELF note type giving the PVH entry point.
const xenElfnotePhys32Entry = 18

// findXZ returns the offset of the xz payload in a bzImage.
func findXZ(image []byte) (int, error) {
	i := bytes.Index(image, xzMagic)
	if i < 0 {
		return 0, errors.New("lab: no xz payload in the kernel image")
	}
	return i, nil
}

// hasPVHNote reports whether the ELF kernel at path can be started by
// qemu's PVH loader (-kernel vmlinux): it carries a Xen PHYS32_ENTRY note.
func hasPVHNote(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, fmt.Errorf("lab: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		data, err := io.ReadAll(p.Open())
		if err != nil {
			return false, fmt.Errorf("lab: read notes: %w", err)
		}
		for len(data) >= 12 {
			namesz := int(binary.LittleEndian.Uint32(data[0:]))
			descsz := int(binary.LittleEndian.Uint32(data[4:]))
			typ := binary.LittleEndian.Uint32(data[8:])
			nameEnd := 12 + (namesz+3)&^3
			end := nameEnd + (descsz+3)&^3
			if namesz < 0 || end > len(data) || end < 12 {
				break
			}
			if typ == xenElfnotePhys32Entry && bytes.Equal(bytes.TrimRight(data[12:12+namesz], "\x00"), []byte("Xen")) {
				return true, nil
			}
			data = data[end:]
		}
	}
	return false, nil
}

// PVHKernel returns an uncompressed vmlinux for k, extracted once into
// cacheDir/lab/vmlinux-HASH. Booting it through qemu's PVH entry skips the
// xz decompression of the bzImage, seconds under TCG. It needs the xz tool;
// callers fall back to k.Image on error.
func PVHKernel(cacheDir string, k Kernel) (string, error) {
	image, err := os.ReadFile(k.Image)
	if err != nil {
		return "", fmt.Errorf("lab: %w", err)
	}
	sum := sha256.Sum256(image)
	dir := filepath.Join(cacheDir, "lab")
	out := filepath.Join(dir, "vmlinux-"+hex.EncodeToString(sum[:8]))
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	off, err := findXZ(image)
	if err != nil {
		return "", err
	}
	err = writeCached(out, func(tmp *os.File) error {
		var stderr bytes.Buffer
		cmd := exec.Command("xz", "-dc", "--single-stream")
		cmd.Stdin = bytes.NewReader(image[off:])
		cmd.Stdout = tmp
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("lab: xz: %w: %s", err, stderr.Bytes())
		}
		ok, err := hasPVHNote(tmp.Name())
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("lab: extracted kernel has no PVH entry note")
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return out, nil
}
