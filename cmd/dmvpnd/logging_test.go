package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/controller/config"
)

func TestJournalPriorities(t *testing.T) {
	for _, format := range []config.LogFormat{config.LogJSON, config.LogConsole} {
		t.Run(string(format), func(t *testing.T) {
			var b bytes.Buffer
			log := buildLogger(config.Log{Format: format}, zap.NewAtomicLevelAt(zap.DebugLevel), &b, true)
			log.Debug("d")
			log.Info("i", zap.String("peer_tunnel", "10.0.0.2"))
			log.Warn("w")
			log.Error("e")
			var got []string
			for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
				got = append(got, l[:3])
				if strings.Count(l, "<") > 1 && !strings.Contains(l, "peer_tunnel") {
					t.Errorf("prefix repeated: %q", l)
				}
			}
			if diff := cmp.Diff([]string{"<7>", "<6>", "<4>", "<3>"}, got); diff != "" {
				t.Errorf("priorities (-want +got):\n%s\n%s", diff, b.String())
			}
		})
	}
	var b bytes.Buffer
	buildLogger(config.Log{}, zap.NewAtomicLevelAt(zap.InfoLevel), &b, false).Warn("w")
	if strings.HasPrefix(b.String(), "<") {
		t.Errorf("prefix outside journald: %q", b.String())
	}
}

// Every level the config accepts names the zap level of the same name.
func TestZapLevelNames(t *testing.T) {
	for _, l := range []config.LogLevel{config.LogDebug, config.LogInfo, config.LogWarn, config.LogError} {
		if got := zapLevel(l).String(); got != string(l) {
			t.Errorf("zapLevel(%q) = %s", l, got)
		}
	}
}
