package ipsec_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/strongswan/govici/vici"

	"github.com/dmvpnd/dmvpnd/ipsec/vicitest"
)

// The VICI contract: what the Manager relies on of charon's VICI answers,
// run against the fake (TestContractFakeVICI) and against a real charon
// in the lab (TestCharonContract), so that vicitest cannot drift from
// charon. It needs no peer: SA establishment against a real peer is
// TestCharonPSK's; here, every command's reply and listing shape.

// contractClient is a VICI client as the Manager's link is: a command
// session registered for the listing events, an event session for the
// SA events.
type contractClient struct {
	t     *testing.T
	cmd   *vici.Session
	lists chan vici.Event
}

func newContractClient(t *testing.T, sock string) *contractClient {
	t.Helper()
	s := vicitest.Dial(t, sock)
	c := &contractClient{t: t, cmd: s, lists: make(chan vici.Event, 1024)}
	s.NotifyEvents(c.lists)
	if err := s.Subscribe("list-sa", "list-conn"); err != nil {
		t.Fatalf("subscribe to list-sa, list-conn: %v", err)
	}
	return c
}

// call runs cmd; ok reports charon's success (a command error is not a
// test failure: the contract says which commands fail).
func (c *contractClient) call(cmd string, in *vici.Message) (resp *vici.Message, ok bool) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.cmd.Call(ctx, cmd, in)
	if err != nil && resp == nil {
		c.t.Fatalf("%s: connection failed: %v", cmd, err)
	}
	return resp, err == nil
}

func (c *contractClient) mustCall(cmd string, in *vici.Message) *vici.Message {
	c.t.Helper()
	resp, ok := c.call(cmd, in)
	if !ok {
		c.t.Fatalf("%s refused: %v", cmd, resp.Get("errmsg"))
	}
	return resp
}

// stream runs a listing command and returns the events it streamed (all
// queued before Call returns, as ipsec's link.stream relies on).
func (c *contractClient) stream(cmd, event string, in *vici.Message) []*vici.Message {
	c.t.Helper()
	c.mustCall(cmd, in)
	var out []*vici.Message
	for {
		select {
		case ev := <-c.lists:
			if ev.Name == event {
				out = append(out, ev.Message)
			}
		default:
			return out
		}
	}
}

func msg(kv ...any) *vici.Message {
	m := vici.NewMessage()
	for i := 0; i < len(kv); i += 2 {
		if err := m.Set(kv[i].(string), kv[i+1]); err != nil {
			panic(err)
		}
	}
	return m
}

// contractConn is a PSK transport-mode GRE connection as the Manager
// loads one (render.go), to a peer that never answers.
func contractConn(local, remote string) *vici.Message {
	child := msg("mode", "transport", "local_ts", []string{"dynamic[gre]"}, "remote_ts", []string{"dynamic[gre]"},
		"start_action", "none")
	return msg("local_addrs", []string{local}, "remote_addrs", []string{remote}, "version", "2",
		"local", msg("auth", "psk", "id", local), "remote", msg("auth", "psk", "id", remote),
		"children", msg("gre", child))
}

func conns(c *contractClient) []string {
	c.t.Helper()
	l, _ := c.mustCall("get-conns", nil).Get("conns").([]string)
	return l
}

func sharedKeys(c *contractClient) []string {
	c.t.Helper()
	l, _ := c.mustCall("get-shared", nil).Get("keys").([]string)
	return l
}

// listedConn flattens one list-conn section to the fields the Manager's
// verification compares (verify.go's listedFingerprint).
func listedConn(c *vici.Message) map[string]any {
	out := map[string]any{"local_addrs": c.Get("local_addrs"), "remote_addrs": c.Get("remote_addrs"),
		"version": c.Get("version")}
	for _, side := range []string{"local-1", "remote-1"} {
		if a, ok := c.Get(side).(*vici.Message); ok {
			out[side+".class"], out[side+".id"] = a.Get("class"), a.Get("id")
		}
	}
	if ch, ok := c.Get("children").(*vici.Message); ok {
		for _, name := range ch.Keys() {
			if cc, ok := ch.Get(name).(*vici.Message); ok {
				out["children."+name] = []any{cc.Get("mode"), cc.Get("local-ts"), cc.Get("remote-ts")}
			}
		}
	}
	return out
}

// runVICIContract runs the contract against the charon (real or fake)
// listening on sock; local is an address of the system it runs on.
func runVICIContract(t *testing.T, sock, local string) {
	c := newContractClient(t, sock)
	const name, remote = "contract-a", "192.0.2.99"

	if d := c.mustCall("version", nil).Get("daemon"); d != "charon" {
		t.Errorf("version: daemon %v, want charon", d)
	}

	ev := vicitest.Dial(t, sock)
	if err := ev.Subscribe("ike-updown", "child-updown", "ike-rekey", "child-rekey"); err != nil {
		t.Errorf("subscribe to the Manager's SA events: %v", err)
	}
	if err := ev.Subscribe("no-such-event"); err == nil {
		t.Error("subscribe to an unknown event: no error")
	}

	if slices.Contains(conns(c), name) {
		t.Fatalf("%s loaded before the test", name)
	}
	c.mustCall("load-conn", msg(name, contractConn(local, remote)))
	if got := conns(c); !slices.Contains(got, name) {
		t.Errorf("get-conns after load-conn: %v, want %s listed", got, name)
	}
	listed := c.stream("list-conns", "list-conn", msg("conn", name))
	if len(listed) != 1 {
		t.Fatalf("list-conns %s: %d list-conn events, want 1", name, len(listed))
	}
	sec, ok := listed[0].Get(name).(*vici.Message)
	if !ok {
		t.Fatalf("list-conn event without section %s: keys %v", name, listed[0].Keys())
	}
	want := map[string]any{
		"local_addrs": []string{local}, "remote_addrs": []string{remote}, "version": "IKEv2",
		"local-1.class": "pre-shared key", "local-1.id": local,
		"remote-1.class": "pre-shared key", "remote-1.id": remote,
		"children.gre": []any{"TRANSPORT", []string{"dynamic[gre]"}, []string{"dynamic[gre]"}},
	}
	if d := cmp.Diff(want, listedConn(sec)); d != "" {
		t.Errorf("list-conn %s (-want +got):\n%s", name, d)
	}

	// Loading again under the same name replaces it.
	c.mustCall("load-conn", msg(name, contractConn(local, "192.0.2.98")))
	if n := len(slices.DeleteFunc(conns(c), func(s string) bool { return s != name })); n != 1 {
		t.Errorf("get-conns after reloading %s: listed %d times, want 1", name, n)
	}

	// No SA yet: list-sas streams nothing for it; initiating a child
	// nobody loaded and terminating an SA that does not exist both fail.
	if sas := c.stream("list-sas", "list-sa", msg("ike", name)); len(sas) != 0 {
		t.Errorf("list-sas %s before any initiate: %d list-sa events, want 0", name, len(sas))
	}
	if resp, ok := c.call("initiate", msg("child", "no-such-child", "timeout", "-1")); ok {
		t.Errorf("initiate of an unknown child: success (%v), want a refusal", resp.Get("errmsg"))
	}
	if resp, ok := c.call("terminate", msg("ike", "no-such-conn", "timeout", "-1")); ok {
		t.Errorf("terminate with no matching SA: success (%v), want a refusal", resp.Get("errmsg"))
	}

	c.mustCall("unload-conn", msg("name", name))
	if got := conns(c); slices.Contains(got, name) {
		t.Errorf("get-conns after unload-conn: %v still lists %s", got, name)
	}
	if _, ok := c.call("unload-conn", msg("name", name)); ok {
		t.Error("unload-conn of a connection not loaded: success, want a refusal")
	}

	const id = "contract-psk"
	c.mustCall("load-shared", msg("id", id, "type", "IKE", "data", "contract key 0123456789", "owners", []string{}))
	if got := sharedKeys(c); !slices.Contains(got, id) {
		t.Errorf("get-shared after load-shared: %v, want %s listed", got, id)
	}
	c.mustCall("unload-shared", msg("id", id))
	if got := sharedKeys(c); slices.Contains(got, id) {
		t.Errorf("get-shared after unload-shared: %v still lists %s", got, id)
	}
}

// TestContractFakeVICI runs the VICI contract against vicitest's fake
// charon.
func TestContractFakeVICI(t *testing.T) {
	srv, err := vicitest.NewServer(t.TempDir() + "/charon.vici")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	runVICIContract(t, srv.Path(), "192.0.2.1")
}

// TestCharonContract runs the VICI contract against a real charon (lab:
// TestIPsecPrivileged, DMVPND_IPSEC_RUN=TestCharonContract).
func TestCharonContract(t *testing.T) {
	requirePrivileged(t)
	a, _ := newPair(t)
	a.startCharon()
	runVICIContract(t, a.sock, a.addr.String())
}
