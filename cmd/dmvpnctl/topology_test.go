package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/dmvpnd/dmvpnd/controller/api/apitest"
)

func TestTopologyFormats(t *testing.T) {
	sock := apitest.Serve(t, apitest.NewFake(apitest.HubFixture()))
	if _, errOut, code := ctl(t, sock, "show", "topology", "--format", "png"); code != 1 || !strings.Contains(errOut, "want dot or svg") {
		t.Errorf("--format png: exit %d, %q", code, errOut)
	}
	out, errOut, code := ctl(t, sock, "show", "topology", "--format", "svg")
	if _, err := exec.LookPath("dot"); err != nil {
		if code != 1 || !strings.Contains(errOut, "Graphviz") {
			t.Errorf("svg without dot: exit %d, %q", code, errOut)
		}
		return
	}
	if code != 0 || !strings.Contains(out, "<svg") {
		t.Errorf("svg: exit %d, stderr %q, output %.200q", code, errOut, out)
	}
}
