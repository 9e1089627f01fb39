package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/controller/api/apitest"
)

// TestTechSupport writes the archive against a fake daemon and fake
// kernel tools: every show in text and JSON, the recent events, the
// configuration without its secret, the kernel state without xfrm keys,
// and a failing tool's error instead of its output.
func TestTechSupport(t *testing.T) {
	f := apitest.NewFake(apitest.SpokeFixture())
	f.Events.Publish(api.Event{Time: apitest.Now, Kind: api.EventRegistration, Level: "info", Reason: "registered"})
	sock := apitest.Serve(t, f)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "dmvpnd.yaml")
	const psk = "s3cret-psk-value"
	yaml := "tunnel: {name: gre1, key: 42, local_nbma: 198.51.100.2, address: 10.0.0.2/24}\n" +
		"nhrp: {role: spoke, network_id: 1, nhs: [{nbma: 198.51.100.1, protocol: 10.0.0.1}]}\n" +
		"ipsec: {enabled: true, auth: {method: psk, psk: " + psk + "}}\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	fakeTools := func(_ context.Context, name string, args ...string) ([]byte, error) {
		line := name + " " + strings.Join(args, " ")
		switch line {
		case "ip xfrm state":
			return []byte("src 198.51.100.2 dst 198.51.100.1\n\tproto esp spi 0xc0000002 reqid 1 mode transport\n" +
				"\taead rfc4106(gcm(aes)) 0x00112233445566778899aabbccddeeff00112233 128\n"), nil
		case "nft list ruleset":
			return []byte("nft: not installed"), errors.New("exit status 127")
		}
		return []byte(line + ": ok\n"), nil
	}
	var out, errOut bytes.Buffer
	e := env{out: &out, errOut: &errOut, now: func() time.Time { return apitest.Now }, client: api.NewClient,
		pollInterval: time.Millisecond, command: fakeTools}
	archive := filepath.Join(dir, "ts.tar.gz")
	if code := run(e, []string{"--socket", sock, "tech-support", "-o", archive, "--config", cfg}); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	files := readArchive(t, archive)
	var names []string
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	var want []string
	for _, args := range techShows {
		n := "dmvpn-tech-support/show/" + strings.Join(args, "-")
		want = append(want, n+".json", n+".txt")
	}
	for _, c := range techCommands {
		want = append(want, "dmvpn-tech-support/"+c.file)
	}
	want = append(want, "dmvpn-tech-support/config-redacted.json", "dmvpn-tech-support/events-recent.json")
	slices.Sort(want)
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("archive listing (-want +got):\n%s", diff)
	}
	if got := files["dmvpn-tech-support/show/show-dmvpn.txt"]; got != ctlOut(t, sock, "show", "dmvpn") {
		t.Errorf("show dmvpn in the archive differs from the command's output:\n%s", got)
	}
	for name, body := range files {
		if strings.Contains(body, psk) || strings.Contains(body, "00112233445566778899") {
			t.Errorf("%s carries a secret:\n%s", name, body)
		}
	}
	if c := files["dmvpn-tech-support/config-redacted.json"]; !strings.Contains(c, "198.51.100.1") {
		t.Errorf("config not included:\n%s", c)
	}
	if x := files["dmvpn-tech-support/kernel/ip-xfrm-state.txt"]; !strings.Contains(x, "aead rfc4106(gcm(aes)) [redacted] 128") {
		t.Errorf("xfrm state not redacted as expected:\n%s", x)
	}
	if n := files["dmvpn-tech-support/kernel/nft-ruleset.txt"]; !strings.Contains(n, "error: nft list ruleset: exit status 127") {
		t.Errorf("failing tool's error missing:\n%s", n)
	}
	if ev := files["dmvpn-tech-support/events-recent.json"]; !strings.Contains(ev, `"registered"`) {
		t.Errorf("recent events missing:\n%s", ev)
	}
}

func ctlOut(t *testing.T, sock string, args ...string) string {
	t.Helper()
	out, errOut, code := ctl(t, sock, args...)
	if code != 0 {
		t.Fatalf("%v: exit %d: %s", args, code, errOut)
	}
	return out
}

func readArchive(t *testing.T, path string) map[string]string {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	gz, err := gzip.NewReader(fh)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	out := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = string(b)
	}
}
