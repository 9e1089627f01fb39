package kernel

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// SysctlWriter reads and writes sysctls by their /proc/sys relative path
// ("net/ipv4/neigh/gre1/app_solicit"). It is an interface so that tests can
// use a fake file system.
type SysctlWriter interface {
	ReadSysctl(key string) (string, error)
	WriteSysctl(key, value string) error
}

// ProcSysctl is the SysctlWriter for a /proc/sys tree. Root defaults to
// "/proc/sys"; NetNS (an open network namespace fd, 0 for the current one)
// selects whose net.* sysctls are seen.
type ProcSysctl struct {
	Root  string
	NetNS int
}

func (p ProcSysctl) path(key string) (string, error) {
	if key == "" || strings.Contains(key, "..") || strings.HasPrefix(key, "/") {
		return "", fmt.Errorf("kernel: invalid sysctl key %q", key)
	}
	root := p.Root
	if root == "" {
		root = "/proc/sys"
	}
	return filepath.Join(root, filepath.FromSlash(key)), nil
}

// ReadSysctl returns the value without the trailing newline.
func (p ProcSysctl) ReadSysctl(key string) (string, error) {
	path, err := p.path(key)
	if err != nil {
		return "", err
	}
	var b []byte
	err = inNetNS(p.NetNS, func() error {
		var rerr error
		b, rerr = os.ReadFile(path)
		return rerr
	})
	if err != nil {
		return "", fmt.Errorf("kernel: read sysctl %s: %w", key, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// WriteSysctl writes value to an existing sysctl file.
func (p ProcSysctl) WriteSysctl(key, value string) error {
	path, err := p.path(key)
	if err != nil {
		return err
	}
	err = inNetNS(p.NetNS, func() error {
		// O_TRUNC without O_CREATE: a sysctl that does not exist is an error.
		f, oerr := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
		if oerr != nil {
			return oerr
		}
		if _, werr := f.WriteString(value + "\n"); werr != nil {
			_ = f.Close()
			return werr
		}
		return f.Close()
	})
	if err != nil {
		return fmt.Errorf("kernel: write sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

// sysctlSetting is one key=value the tunnel needs.
type sysctlSetting struct {
	Key, Value string
}

// tunnelSysctls lists the sysctls that make the kernel report neighbor misses
// to userspace and stop ICMP redirects on the tunnel.
func tunnelSysctls(dev string) []sysctlSetting {
	return []sysctlSetting{
		{"net/ipv4/neigh/" + dev + "/app_solicit", "1"},
		{"net/ipv4/neigh/" + dev + "/ucast_solicit", "0"},
		{"net/ipv4/neigh/" + dev + "/mcast_solicit", "0"},
		{"net/ipv4/conf/" + dev + "/send_redirects", "0"},
		{"net/ipv4/conf/all/send_redirects", "0"},
	}
}

// applySysctls writes each setting whose current value differs.
func applySysctls(w SysctlWriter, settings []sysctlSetting) error {
	for _, s := range settings {
		cur, err := w.ReadSysctl(s.Key)
		if err == nil && cur == s.Value {
			continue
		}
		if err := w.WriteSysctl(s.Key, s.Value); err != nil {
			return err
		}
	}
	return nil
}
