package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/controller/config"
)

// pskWarning is what --check says about a group pre-shared key.
const pskWarning = "dmvpnd: warning: ipsec.auth.method: psk: a group pre-shared key proves no identity; every holder can take a " +
	"tunnel address or NATed NBMA that is not in use (docs/security.md); prefer x509 with bind_tunnel_address\n"

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	psk := filepath.Join(dir, "psk")
	if err := os.WriteFile(psk, []byte("0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		yaml   string
		code   int
		stdout string
		stderr string
		flags  string
	}{
		{"valid", hubYAML + "ipsec: {enabled: true, auth: {method: psk, psk_file: " + psk + "}}\n", exitOK,
			"CFG: configuration OK (hub, tunnel gre1 10.0.0.1/24)\n", pskWarning, ""},
		{"valid without ipsec", hubYAML, exitOK, "CFG: configuration OK (hub, tunnel gre1 10.0.0.1/24)\n",
			"dmvpnd: warning: ipsec.enabled: false: NHRP and overlay traffic are neither authenticated nor encrypted; " +
				"anyone who can send to this node's NBMA address can register, resolve and purge (docs/security.md)\n", ""},
		{"invalid", "tunnel: {local_nbma: 300.1.1.1, address: 10.0.0.1/24}\nnhrp: {role: hub, network_id: 1}\n", exitConfig,
			"", "dmvpnd: config: tunnel.local_nbma: \"300.1.1.1\" is not an IPv4 or IPv6 address\n", ""},
		{"several problems", "tunnel: {local_nbma: 192.0.2.1, address: 10.0.0.1/24, mtu: 10}\nnhrp: {role: hub}\n", exitConfig,
			"", "dmvpnd: config: tunnel.mtu: 10 is out of range (576..9000)\nconfig: nhrp.network_id: required (1..4294967295)\n", ""},
		{"missing psk file", hubYAML + "ipsec: {enabled: true, auth: {method: psk, psk_file: /nonexistent/psk}}\n", exitConfig,
			"", "dmvpnd: config: ipsec.auth.psk_file: open /nonexistent/psk: no such file or directory\n", ""},
		{"unknown group", hubYAML + "control: {group: no-such-group-dmvpnd}\n", exitConfig,
			"", "dmvpnd: config: control.group: group: unknown group no-such-group-dmvpnd\n", ""},
		{"offline check skips files and group", hubYAML + "ipsec: {enabled: true, auth: {method: psk, psk_file: /nonexistent/psk}}\n" +
			"control: {group: no-such-group-dmvpnd}\n", exitOK, "CFG: configuration OK (hub, tunnel gre1 10.0.0.1/24)\n", pskWarning, "--no-secrets"},
		{"offline check still validates", hubYAML + "log: {level: loud}\n", exitConfig, "",
			"dmvpnd: config: log.level: \"loud\" is not debug, info, warn or error\n", "--no-secrets"},
		{"no-secrets without check", hubYAML, exitConfig, "", "dmvpnd: --no-secrets only goes with --check\n", "--no-secrets --check=false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name+".yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errOut bytes.Buffer
			rt := &app{stdout: &out, stderr: &errOut, load: loadConfig,
				newDaemon: func(_ *config.Config, _ Deps) (Daemon, error) { t.Fatal("--check built a daemon"); return nil, nil }}
			code := rt.execute(context.Background(), append([]string{"--config", path, "--check"}, strings.Fields(tt.flags)...))
			want := []any{tt.code, replaceCFG(tt.stdout, path), tt.stderr}
			if diff := cmp.Diff(want, []any{code, out.String(), errOut.String()}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func replaceCFG(s, path string) string {
	if len(s) >= 3 && s[:3] == "CFG" {
		return path + s[3:]
	}
	return s
}
