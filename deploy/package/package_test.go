package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/config"
)

func TestDebianVersion(t *testing.T) {
	for in, want := range map[string]string{
		"v1.2.3":                  "1.2.3",
		"1.2.3":                   "1.2.3",
		"v1.2.3-4-gabc1234":       "1.2.3+4.gabc1234",
		"v1.2.3-4-gabc1234-dirty": "1.2.3+4.gabc1234.dirty",
		"v1.0.0-rc1":              "0~v1.0.0.rc1",
		"abc1234":                 "0~git.abc1234",
		"0a23170-dirty":           "0~git.0a23170.dirty",
		"dev":                     "0~dev",
		"":                        "0~dev",
	} {
		if got := DebianVersion(in); got != want {
			t.Errorf("DebianVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestConfigManPageHasEveryKey: dmvpnd.yaml(5) lists every key of the
// schema, with its default.
func TestConfigManPageHasEveryKey(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	page, err := ConfigManPage(readme, "v1.2.3", time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	s := string(page)
	for _, k := range config.Keys() {
		if !strings.Contains(s, ".B "+roff(k)+"\n") {
			t.Errorf("dmvpnd.yaml(5) lacks %s", k)
		}
	}
	for _, want := range []string{`.TH "DMVPND.YAML" "5" "Jan 2026" "dmvpnd v1.2.3"`, "(default: gre1)", "DMVPND_"} {
		if !strings.Contains(s, want) {
			t.Errorf("dmvpnd.yaml(5) lacks %q", want)
		}
	}
}
