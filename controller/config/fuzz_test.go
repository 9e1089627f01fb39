package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that no input makes Parse panic, and that whatever it
// accepts also passes Validate again (Parse never returns an invalid Config).
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimalSpoke))
	f.Add([]byte(minimalHub))
	f.Add([]byte("nhrp: ~\ntunnel: []\n"))
	f.Add([]byte("nhrp: {nhs: [5, {nbma: [1]}]}\n"))
	examples, _ := filepath.Glob("../../deploy/examples/*.yaml")
	for _, e := range examples {
		if b, err := os.ReadFile(e); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if c != nil {
				t.Fatalf("Parse returned a config with error %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that fails Validate: %v", err)
		}
	})
}

func TestParseOddShapes(t *testing.T) {
	for _, y := range []string{
		"", "nhrp: ~\n", "tunnel: []\n", "nhrp: {nhs: [5]}\n", "nhrp: {nhs: [{nbma: [1]}]}\n",
		"tunnel: {mtu: 1.5}\n", "bgp: {prefixes: 10.0.0.0/8}\n", "ipsec: {proposals: {ike: 7}}\n",
		"nhrp: {holding_time: true}\n", "tunnel: {key: -1}\n", "- a\n- b\n", "42\n",
	} {
		c, err := Parse([]byte(y))
		if err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", y, c)
			continue
		}
		if len(FieldErrors(err)) == 0 && !isParseErr(err) {
			t.Errorf("Parse(%q) = %v: no field errors", y, err)
		}
	}
}

func isParseErr(err error) bool { return len(err.Error()) > 14 && err.Error()[:14] == "config: parse:" }
