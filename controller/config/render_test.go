package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/ipsec"
)

// TestYAMLRoundTrip: the rendered configuration loads again into the same
// configuration, secrets aside, and never shows a secret.
func TestYAMLRoundTrip(t *testing.T) {
	c := mustParse(t, diffBase)
	out := c.YAML()
	if strings.Contains(string(out), "secret1") || strings.Contains(string(out), "key-one") {
		t.Fatalf("YAML reveals a secret:\n%s", out)
	}
	back := mustParse(t, strings.ReplaceAll(string(out), ipsec.NewSecret("x").String(), "x"))
	back.NHRP.Authentication, back.IPsec.Auth.PSK = c.NHRP.Authentication, c.IPsec.Auth.PSK
	if d := Diff(c, back); len(d) != 0 {
		t.Errorf("YAML does not load back into the same configuration: %v\n%s", d, out)
	}
	if tree := c.Tree(); !cmp.Equal(tree["tunnel"], map[string]any{"name": "gre1", "key": 0, "local_nbma": "192.0.2.11",
		"address": "10.0.0.11/24", "mtu": 1400, "host_address": false}) {
		t.Errorf("Tree()[tunnel] = %v", tree["tunnel"])
	}
}
