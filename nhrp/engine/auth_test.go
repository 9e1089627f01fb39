package engine_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/dmvpnd/dmvpnd/nhrp/engine/nhrpsim"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestAuthenticationMismatch(t *testing.T) {
	const secret = "s3cr3tpw"
	core, logs := observer.New(zapcore.DebugLevel)
	tp := &topo{t: t, net: nhrpsim.New()}
	cfg := hubConfig()
	cfg.AuthPassword = []byte(secret)
	cfg.Logger = zap.New(core)
	tp.hub = tp.add("hub", hubNBMA, nil, cfg)
	good := tp.spoke(2, "198.51.100.2", nil, func(c *engine.Config) { c.AuthPassword = []byte(secret) })
	bad := tp.spoke(3, "198.51.100.3", nil, func(c *engine.Config) { c.AuthPassword = []byte("wrong") })
	none := tp.spoke(4, "198.51.100.4", nil)
	tp.start()

	if got := nhsStates(good); got != "192.0.2.1=up" {
		t.Errorf("matching password: %s", got)
	}
	for _, s := range []string{"10.255.0.3", "10.255.0.4"} {
		if _, ok := cacheEntry(tp.hub, s, engine.KindRegistered); ok {
			t.Errorf("hub registered %s despite a bad password", s)
		}
	}
	// The spoke without a password takes the hub's Error Indication; the
	// one with another password cannot authenticate it (an Error
	// Indication is authenticated like every packet) and keeps retrying.
	if st := none.Engine.NHSs()[0]; st.State != engine.NHSDown || !strings.Contains(st.Reason, "authentication-failure") {
		t.Errorf("%s: NHS %v %q, want down after error 11", none.Name, st.State, st.Reason)
	}
	if st := bad.Engine.NHSs()[0]; st.State != engine.NHSProbing || bad.Engine.Counters()["drop_auth"] != 1 {
		t.Errorf("%s: NHS %v, drop_auth %d; want probing and 1", bad.Name, st.State, bad.Engine.Counters()["drop_auth"])
	}
	c := tp.hub.Engine.Counters()
	if c["drop_auth"] != 2 || c["error_indications_sent"] != 2 {
		t.Errorf("hub drop_auth %d error_indications_sent %d, want 2 and 2", c["drop_auth"], c["error_indications_sent"])
	}
	if logs.Len() == 0 {
		t.Fatal("no log entries to check")
	}
	for _, e := range logs.All() {
		line := e.Message
		for k, v := range e.ContextMap() {
			line += fmt.Sprintf(" %s=%v", k, v)
		}
		if strings.Contains(line, secret) || strings.Contains(line, "wrong") {
			t.Errorf("password in log: %s", line)
		}
	}
}
