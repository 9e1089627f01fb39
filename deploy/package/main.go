// Command package builds the dmvpnd .deb with nfpm (used as a library, so
// the version is pinned in go.mod). It runs the built binaries' hidden
// "__docs" command for their man pages and completions, renders
// dmvpnd.yaml(5) from the configuration reference in deploy/README.md, and
// stamps every file with one time (SOURCE_DATE_EPOCH), so that one commit
// always yields the same package. Run it with `make package`.
package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
)

const maintainer = "dmvpnd maintainers <dmvpnd@users.noreply.github.com>"

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin", "directory holding the built dmvpnd and dmvpnctl")
	flag.StringVar(&o.root, "root", ".", "repository root")
	flag.StringVar(&o.version, "version", "", "version (git describe); turned into a Debian version")
	flag.StringVar(&o.arch, "arch", "amd64", "Debian architecture")
	flag.StringVar(&o.out, "out", "", "output .deb (default dmvpnd_VERSION_ARCH.deb in the current directory)")
	flag.Parse()
	path, err := build(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "package: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(path)
}

type options struct {
	bin, root, version, arch, out string
}

// build writes the package and returns its path.
func build(o options) (string, error) {
	mtime, err := sourceDate()
	if err != nil {
		return "", err
	}
	debVersion := DebianVersion(o.version)
	stage, err := os.MkdirTemp("", "dmvpnd-package-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(stage)

	var contents files.Contents
	add := func(src, dst, typ string, mode os.FileMode) {
		contents = append(contents, &files.Content{Source: src, Destination: dst, Type: typ,
			FileInfo: &files.ContentFileInfo{Owner: "root", Group: "root", Mode: mode, MTime: mtime}})
	}
	// staged writes data into the staging directory as a package file.
	staged := func(name string, data []byte, dst string, mode os.FileMode) error {
		p := filepath.Join(stage, "files", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
		add(p, dst, "", mode)
		return nil
	}
	// stagedConf is staged for a conffile (mode 0644).
	stagedConf := func(name string, data []byte, dst string) error {
		if err := staged(name, data, dst, 0o644); err != nil {
			return err
		}
		contents[len(contents)-1].Type = files.TypeConfig
		return nil
	}
	r := func(p string) string { return filepath.Join(o.root, p) }

	add(filepath.Join(o.bin, "dmvpnd"), "/usr/sbin/dmvpnd", "", 0o755)
	add(filepath.Join(o.bin, "dmvpnctl"), "/usr/bin/dmvpnctl", "", 0o755)
	add(r("deploy/systemd/dmvpnd.service"), "/lib/systemd/system/dmvpnd.service", "", 0o644)
	add(r("deploy/systemd/dmvpnd-charon.service"), "/lib/systemd/system/dmvpnd-charon.service", "", 0o644)
	add(r("deploy/sysctl/60-dmvpnd.conf"), "/usr/lib/sysctl.d/60-dmvpnd.conf", "", 0o644)
	add(r("deploy/package/lintian/dmvpnd"), "/usr/share/lintian/overrides/dmvpnd", "", 0o644)
	for _, ex := range []string{"hub.yaml", "spoke.yaml", "spoke-nat.yaml"} {
		add(r("deploy/examples/"+ex), "/etc/dmvpnd/examples/"+ex, files.TypeConfig, 0o644)
	}

	// Man pages and completions from the binaries themselves.
	for _, prog := range []string{"dmvpnd", "dmvpnctl"} {
		dir := filepath.Join(stage, "docs", prog)
		cmd := exec.Command(filepath.Join(o.bin, prog), "__docs", dir)
		cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(mtime.Unix(), 10))
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("%s __docs: %v\n%s", prog, err, out)
		}
		pages, err := filepath.Glob(filepath.Join(dir, "man8", "*.8"))
		if err != nil {
			return "", err
		}
		sort.Strings(pages)
		for _, p := range pages {
			b, err := os.ReadFile(p)
			if err != nil {
				return "", err
			}
			name := filepath.Base(p) + ".gz"
			if err := staged("man8/"+name, gz(b, mtime), "/usr/share/man/man8/"+name, 0o644); err != nil {
				return "", err
			}
		}
		add(filepath.Join(dir, "bash", prog), "/usr/share/bash-completion/completions/"+prog, "", 0o644)
		add(filepath.Join(dir, "zsh", "_"+prog), "/usr/share/zsh/vendor-completions/_"+prog, "", 0o644)
	}
	// The dedicated charon's strongswan.conf, from the renderer the tests
	// and the lab use; a conffile, so that a local change (log level,
	// plugins) survives upgrades.
	if err := stagedConf("strongswan.conf", []byte(CharonConf()), "/etc/dmvpnd/strongswan.conf"); err != nil {
		return "", err
	}
	readme, err := os.ReadFile(r("deploy/README.md"))
	if err != nil {
		return "", err
	}
	page, err := ConfigManPage(readme, o.version, mtime)
	if err != nil {
		return "", err
	}
	if err := staged("man5/dmvpnd.yaml.5.gz", gz(page, mtime), "/usr/share/man/man5/dmvpnd.yaml.5.gz", 0o644); err != nil {
		return "", err
	}
	if err := staged("copyright", []byte(copyright), "/usr/share/doc/dmvpnd/copyright", 0o644); err != nil {
		return "", err
	}
	if err := staged("changelog.gz", gz([]byte(changelog(debVersion, o.version, mtime)), mtime),
		"/usr/share/doc/dmvpnd/changelog.gz", 0o644); err != nil {
		return "", err
	}

	scripts := func(n string) string { return r("deploy/package/scripts/" + n) }
	info := &nfpm.Info{
		Name:          "dmvpnd",
		Arch:          o.arch,
		Platform:      "linux",
		Version:       debVersion,
		VersionSchema: "none",
		Section:       "net",
		Priority:      "optional",
		Maintainer:    maintainer,
		Homepage:      "https://github.com/dmvpnd/dmvpnd",
		License:       "Apache-2.0",
		Description: "DMVPN daemon for Linux (NHRP, mGRE, IPsec, BGP)\n" +
			"dmvpnd runs one hub or spoke of a Dynamic Multipoint VPN: it speaks\n" +
			"NHRP (RFC 2332 with the Cisco extensions), programs an mGRE tunnel,\n" +
			"protects every peer pair with IKEv2 through strongSwan (VICI) and\n" +
			"carries routes with an embedded BGP speaker. dmvpnctl inspects and\n" +
			"controls it.",
		MTime: mtime,
		Overridables: nfpm.Overridables{
			// charon with the VICI plugin (strongswan-swanctl); the standard
			// plugins add AES-GCM for IKE and the ECP/Curve25519 groups of
			// the preferred default proposals (without them the ipsec
			// package falls back to aes256-sha384-modp3072).
			Depends:    []string{"strongswan-charon", "strongswan-swanctl", "adduser"},
			Recommends: []string{"libstrongswan-standard-plugins"},
			Contents:   contents,
			Scripts: nfpm.Scripts{
				PostInstall: scripts("postinst"),
				PreRemove:   scripts("prerm"),
				PostRemove:  scripts("postrm"),
			},
			// gzip at level 6: xz (and gzip -9) took most of the build's
			// time, twice per TestDeb, and dpkg -i in the TCG lab spent
			// minutes unpacking xz. The data is mostly stripped Go binaries,
			// so xz saved only 9% (12.4 against 13.6 MB). lintian refuses
			// zstd (malformed-deb-archive).
			Deb: nfpm.Deb{Compression: "gzip:6"},
		},
	}
	info = nfpm.WithDefaults(info)
	info.Umask = 0o022
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return "", err
	}
	pkgr, err := nfpm.Get("deb")
	if err != nil {
		return "", err
	}
	out := o.out
	if out == "" {
		out = pkgr.ConventionalFileName(info)
	}
	var buf bytes.Buffer
	if err := pkgr.Package(info, &buf); err != nil {
		return "", err
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return "", err
	}
	return out, nil
}

// sourceDate is SOURCE_DATE_EPOCH (the Makefile sets the commit time).
func sourceDate() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH is not set (make package sets it to the commit time)")
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", s, err)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// gz compresses at the best level with a fixed header (no name, fixed time),
// as Debian wants man pages and changelogs.
func gz(b []byte, mtime time.Time) []byte {
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	w.ModTime = mtime
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

func changelog(debVersion, gitVersion string, t time.Time) string {
	return fmt.Sprintf("dmvpnd (%s) unstable; urgency=medium\n\n  * Built from git %s.\n\n -- %s  %s\n",
		debVersion, gitVersion, maintainer, t.Format(time.RFC1123Z))
}

const copyright = `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: dmvpnd
Source: https://github.com/dmvpnd/dmvpnd

Files: *
Copyright: 2026 dmvpnd authors
License: Apache-2.0
 On Debian systems, the complete text of the Apache License, Version 2.0,
 can be found in "/usr/share/common-licenses/Apache-2.0".
`
