package deploy

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/controller/config"
)

func TestExamplesValidate(t *testing.T) {
	files, err := filepath.Glob("examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"examples/hub.yaml", "examples/spoke-nat.yaml", "examples/spoke.yaml"}, files); diff != "" {
		t.Errorf("example files (-want +got):\n%s", diff)
	}
	type summary struct {
		Role     config.Role
		Tunnel   string
		NHS      int
		IPsec    config.AuthMethod
		BGPMode  config.HubMode
		Redirect bool
		Shortcut bool
	}
	want := map[string]summary{
		"examples/hub.yaml":       {config.RoleHub, "10.0.0.1/24", 0, config.AuthPSK, config.HubSummary, true, false},
		"examples/spoke.yaml":     {config.RoleSpoke, "10.0.0.11/24", 2, config.AuthPSK, "", false, true},
		"examples/spoke-nat.yaml": {config.RoleSpoke, "10.0.0.21/24", 1, config.AuthX509, "", false, true},
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := config.Load(f)
			if err != nil {
				t.Fatalf("%s does not validate:\n%v", f, err)
			}
			got := summary{c.NHRP.Role, c.Tunnel.Address.String(), len(c.NHRP.NHS), c.IPsec.Auth.Method,
				c.BGP.HubMode, c.NHRP.Redirect, c.NHRP.Shortcut}
			if diff := cmp.Diff(want[f], got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", f, diff)
			}
		})
	}
}
