package vicitest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/strongswan/govici/vici"
)

// TestServerWithGovici drives the fake with the real client library.
func TestServerWithGovici(t *testing.T) {
	dir, err := os.MkdirTemp("", "vicitest")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	srv, err := NewServer(filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	sess := Dial(t, srv.Path())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	v, err := sess.Call(ctx, "version", nil)
	if err != nil || v.Get("daemon") != "charon" {
		t.Fatalf("version: %v %v", v, err)
	}
	if _, err := sess.Call(ctx, "no-such-command", nil); err == nil {
		t.Error("unknown command succeeded")
	}
	if err := sess.Subscribe("no-such-event"); err == nil {
		t.Error("subscribing to an unknown event succeeded")
	}
	conn := vici.NewMessage()
	_ = conn.Set("c1", vici.NewMessage())
	if _, err := sess.Call(ctx, "load-conn", conn); err != nil {
		t.Fatal(err)
	}
	if got := srv.Conns(); len(got) != 1 || got[0] != "c1" {
		t.Errorf("conns %v", got)
	}
	un := vici.NewMessage()
	_ = un.Set("name", "c2")
	if _, err := sess.Call(ctx, "unload-conn", un); err == nil {
		t.Error("unloading a missing conn succeeded")
	}

	sa := SA{Conn: "c1", UniqueID: 3, State: "ESTABLISHED", RemoteHost: "192.0.2.1", RemotePort: 4500,
		Children: []ChildSA{{Name: "gre", UniqueID: 4, State: "INSTALLED", Mode: "TUNNEL", Encap: true}}}
	srv.Handle("list-sas", func(*Message) ([]*Message, *Message) { return []*Message{ListSA(sa), ListSA(sa)}, nil })
	// Streamed events reach a client registered for them before the reply.
	lists := make(chan vici.Event, 8)
	sess.NotifyEvents(lists)
	if err := sess.Subscribe("list-sa"); err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Call(ctx, "list-sas", nil); err != nil {
		t.Fatal(err)
	}
	n := 0
	for len(lists) > 0 {
		m := (<-lists).Message
		body, _ := m.Get("c1").(*vici.Message)
		if body == nil || body.Get("remote-port") != "4500" {
			t.Errorf("list-sa %v", m)
		}
		n++
	}
	if n != 2 {
		t.Errorf("%d list-sa events, want 2", n)
	}

	events := make(chan vici.Event, 4)
	sess.NotifyEvents(events)
	if err := sess.Subscribe("ike-updown"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Wait(time.Second, func(s *Server) bool { return s.Subscribers("ike-updown") == 1 }); err != nil {
		t.Fatal(err)
	}
	if got := srv.Emit("ike-updown", IKEUpdown(true, sa)); got != 1 {
		t.Fatalf("emitted to %d", got)
	}
	select {
	case ev := <-events:
		if ev.Name != "ike-updown" || ev.Message.Get("up") != "yes" {
			t.Errorf("event %+v", ev)
		}
	case <-ctx.Done():
		t.Fatal("no event")
	}
	if cmds := srv.Commands(); len(cmds) != 5 || cmds[0].Name != "version" {
		t.Errorf("recorded %d commands", len(cmds))
	}
	srv.Stop()
	if _, err := sess.Call(ctx, "version", nil); err == nil {
		t.Error("command after Stop succeeded")
	}
}
