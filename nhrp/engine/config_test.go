package engine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/dmvpnd/dmvpnd/nhrp/engine/nhrpsim"
)

// TestNewRequiresLimits: the engine has no defaults of its own for the
// limits dmvpnd's configuration owns (nhrp.limits), so a Config missing
// one is refused instead of running on numbers that disagree with it.
func TestNewRequiresLimits(t *testing.T) {
	base := func() engine.Config {
		return nhrpsim.WithLimits(engine.Config{
			Proto: addr(hubProto), NBMA: addr(hubNBMA), Server: true,
			Clock: nhrpsim.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)), Conn: discardConn{},
		})
	}
	if _, err := engine.New(base()); err != nil {
		t.Fatalf("New with every limit: %v", err)
	}
	for name, unset := range map[string]func(*engine.Config){
		"MaxCache":          func(c *engine.Config) { c.MaxCache = 0 },
		"MaxPending":        func(c *engine.Config) { c.MaxPending = 0 },
		"SourceRate":        func(c *engine.Config) { c.SourceRate = 0 },
		"AddressesPerPeer":  func(c *engine.Config) { c.AddressesPerPeer = 0 },
		"MaxCachePerSource": func(c *engine.Config) { c.MaxCachePerSource = -1 },
	} {
		c := base()
		unset(&c)
		if _, err := engine.New(c); err == nil || !strings.Contains(err.Error(), "are required") {
			t.Errorf("New without %s = %v, want refused", name, err)
		}
	}
}
