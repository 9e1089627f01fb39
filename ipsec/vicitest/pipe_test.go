package vicitest

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strongswan/govici/vici"
)

// TestPipeServerInBubble runs a govici session against a pipe Server inside
// a synctest bubble: fake time moves while the session's reader is blocked
// on the pipe, commands and events work, and Stop and Start behave as a
// restarted charon.
func TestPipeServerInBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := NewPipeServer()
		defer srv.Close()
		if srv.Path() != "" {
			t.Errorf("Path = %q, want empty", srv.Path())
		}
		sess := Connect(t, srv)
		evs := make(chan vici.Event, 4)
		sess.NotifyEvents(evs)
		if err := sess.Subscribe("ike-updown"); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		time.Sleep(time.Hour) // the bubble is durably blocked: fake time jumps
		if got := time.Since(start); got != time.Hour {
			t.Fatalf("slept %v, want 1h", got)
		}
		if n := srv.Emit("ike-updown", NewMessage().Set("up", "yes")); n != 1 {
			t.Fatalf("event sent to %d clients, want 1", n)
		}
		if ev := <-evs; ev.Name != "ike-updown" || ev.Message.Get("up") != "yes" {
			t.Errorf("event %s %v, want ike-updown up=yes", ev.Name, ev.Message)
		}
		v, err := sess.Call(context.Background(), "version", nil)
		if err != nil || v.Get("daemon") != "charon" {
			t.Fatalf("version: %v %v", v, err)
		}
		if got := srv.Accepts(); got != 1 {
			t.Errorf("Accepts = %d, want 1", got)
		}

		srv.Stop()
		if _, err := srv.Dial(context.Background()); !errors.Is(err, errRefused) {
			t.Errorf("Dial to a stopped server: %v, want %v", err, errRefused)
		}
		if _, err := sess.Call(context.Background(), "version", nil); err == nil {
			t.Error("a call over a stopped server's pipe succeeded")
		}
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		again := Connect(t, srv)
		if _, err := again.Call(context.Background(), "version", nil); err != nil {
			t.Errorf("version after restart: %v", err)
		}
		if got := srv.Accepts(); got != 2 {
			t.Errorf("Accepts after restart = %d, want 2", got)
		}
		_ = sess.Close()
		_ = again.Close()
		srv.Close()
		synctest.Wait()
	})
}
