package lab

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"path/filepath"
)

// Kernel is an unpacked Debian kernel package (see e2e/scripts/deps.sh).
type Kernel struct {
	Image      string // path of vmlinuz
	Version    string // e.g. "6.1.0-56-amd64"
	ModulesDir string // host path of lib/modules/VERSION
}

// FindKernel locates the kernel unpacked by deps.sh under cacheDir/kernel.
func FindKernel(cacheDir string) (Kernel, error) {
	dir := filepath.Join(cacheDir, "kernel")
	v, err := os.ReadFile(filepath.Join(dir, "version"))
	if err != nil {
		return Kernel{}, fmt.Errorf("lab: no lab kernel (run sh e2e/scripts/deps.sh): %w", err)
	}
	ver := string(bytes.TrimSpace(v))
	k := Kernel{
		Image:      filepath.Join(dir, "vmlinuz"),
		Version:    ver,
		ModulesDir: filepath.Join(dir, "root", "lib", "modules", ver),
	}
	for _, p := range []string{k.Image, filepath.Join(k.ModulesDir, "modules.dep")} {
		if _, err := os.Stat(p); err != nil {
			return Kernel{}, fmt.Errorf("lab: incomplete lab kernel: %w", err)
		}
	}
	return k, nil
}

// buildInitramfs assembles the initramfs for k with the given static busybox.
func buildInitramfs(k Kernel, busybox string) (*archive, error) {
	depFile, err := os.Open(filepath.Join(k.ModulesDir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	defer depFile.Close()
	md, err := parseModulesDep(depFile)
	if err != nil {
		return nil, err
	}
	mods, err := md.resolve(initModules...)
	if err != nil {
		return nil, err
	}
	a := newArchive()
	for _, d := range []string{"dev", "proc", "sys", "lower", "rw", "newroot"} {
		a.dir(d)
	}
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return nil, fmt.Errorf("lab: busybox: %w", err)
	}
	a.file("bin/busybox", 0o755, bb)
	for _, ap := range initApplets {
		a.symlink("bin/"+ap, "busybox")
	}
	var files []string
	for _, m := range mods {
		data, err := os.ReadFile(filepath.Join(k.ModulesDir, m))
		if err != nil {
			return nil, fmt.Errorf("lab: module: %w", err)
		}
		name := "modules/" + path.Base(m)
		a.file(name, 0o644, data)
		files = append(files, name)
	}
	a.file("init", 0o755, []byte(renderInit(files, k.Version)))
	return a, nil
}

// Initramfs returns the path of an uncompressed newc initramfs for k,
// building it into cacheDir/lab/initramfs-HASH.cpio if no archive with the
// same content exists yet. The name is the hash of the archive's bytes, so a
// new kernel, busybox or init script yields a new file.
func Initramfs(cacheDir string, k Kernel, busybox string) (string, error) {
	a, err := buildInitramfs(k, busybox)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := a.writeTo(&buf); err != nil {
		return "", err
	}
	sum := sha256.Sum256(buf.Bytes())
	dir := filepath.Join(cacheDir, "lab")
	out := filepath.Join(dir, "initramfs-"+hex.EncodeToString(sum[:8])+".cpio")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	err = writeCached(out, func(tmp *os.File) error {
		if _, err := tmp.Write(buf.Bytes()); err != nil {
			return fmt.Errorf("lab: write initramfs: %w", err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return out, nil
}
