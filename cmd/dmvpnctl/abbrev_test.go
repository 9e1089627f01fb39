package main

import (
	"strings"
	"testing"

	"github.com/dmvpnd/dmvpnd/controller/api/apitest"
)

// TestAbbreviations: unambiguous prefixes run the command; an ambiguous
// one fails.
func TestAbbreviations(t *testing.T) {
	sock := apitest.Serve(t, apitest.NewFake(apitest.SpokeFixture()))
	full, _, _ := ctl(t, sock, "show", "dmvpn")
	for _, args := range [][]string{{"sh", "dmvpn"}, {"sho", "dm"}} {
		out, errOut, code := ctl(t, sock, args...)
		if code != 0 || out != full {
			t.Errorf("%v: exit %d, stderr %q, output differs from show dmvpn", args, code, errOut)
		}
	}
	if out, _, code := ctl(t, sock, "sh", "nhrp", "ca"); code != 0 || !strings.Contains(out, "Expires") {
		t.Errorf("sh nhrp ca: exit %d\n%s", code, out)
	}
	if _, errOut, code := ctl(t, sock, "s", "dmvpn"); code == 0 || !strings.Contains(errOut, "unknown command") {
		t.Errorf("s dmvpn (show or status?) ran: exit %d, stderr %q", code, errOut)
	}
}
