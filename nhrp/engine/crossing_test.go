package engine_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// recvAt hands b from the NBMA address from to the engine as a packet the
// kernel received at the given time and returns what the engine sent.
func (r *rig) recvAt(from string, b []byte, received time.Time) []sentPacket {
	r.t.Helper()
	n := len(r.sent)
	r.node.Engine.HandlePacketReceived(addr(from), b, received)
	if err := r.net.Run(); err != nil {
		r.t.Fatal(err)
	}
	return r.sent[n:]
}

// crossingRig is a hub that is behind its socket: a spoke's request (id 7)
// was received at t0 and is handled 2 s later, so its answer goes out at
// t0+2s.
func crossingRig(t *testing.T) (r *rig, req []byte, t0 time.Time) {
	t.Helper()
	r = newRig(t)
	t0 = r.net.Clock.Now()
	r.advance(2 * time.Second)
	req = registration(t, "198.51.100.2", "10.255.0.2", 7, false, cie{proto: "10.255.0.2", nbma: "198.51.100.2", holding: 600})
	if got := codes(r.recvAt("198.51.100.2", req, t0)); !cmp.Equal(got, []string{"success"}) {
		t.Fatalf("first request answered %v, want one success", got)
	}
	return r, req, t0
}

// TestRetransmissionThatCrossedTheAnswerIsDropped: the spoke retransmitted
// its request (same id) 1 s after sending it; that copy was queued before
// the answer went out, which already serves it: no second reply, and the
// drop is counted.
func TestRetransmissionThatCrossedTheAnswerIsDropped(t *testing.T) {
	r, req, t0 := crossingRig(t)
	if got := r.recvAt("198.51.100.2", req, t0.Add(time.Second)); len(got) != 0 {
		t.Errorf("crossed retransmission answered: %v", codes(got))
	}
	if got := r.counter("drop_retransmit_answered"); got != 1 {
		t.Errorf("drop_retransmit_answered = %d, want 1", got)
	}
	if got := r.counter("registrations_accepted"); got != 1 {
		t.Errorf("registrations_accepted = %d, want 1", got)
	}
}

// TestRetransmissionAfterTheAnswerIsAnswered: a copy the kernel received
// after the answer went out is a retransmission the spoke sent because the
// answer was lost (or slow): it is served.
func TestRetransmissionAfterTheAnswerIsAnswered(t *testing.T) {
	r, req, t0 := crossingRig(t)
	if got := codes(r.recvAt("198.51.100.2", req, t0.Add(3*time.Second))); !cmp.Equal(got, []string{"success"}) {
		t.Errorf("retransmission after the answer answered %v, want one success", got)
	}
	if got := r.counter("drop_retransmit_answered"); got != 0 {
		t.Errorf("drop_retransmit_answered = %d, want 0", got)
	}
}

// TestCrossingNeedsTheSameRequest: only the same request (sender, source
// address, request id) is taken for a retransmission.
func TestCrossingNeedsTheSameRequest(t *testing.T) {
	r, _, t0 := crossingRig(t)
	for _, tc := range []struct {
		name, from string
		b          []byte
	}{
		{"another request id", "198.51.100.2", registration(t, "198.51.100.2", "10.255.0.2", 8, false, cie{proto: "10.255.0.2", nbma: "198.51.100.2", holding: 600})},
		{"another spoke, same id", "198.51.100.3", registration(t, "198.51.100.3", "10.255.0.3", 7, false, cie{proto: "10.255.0.3", nbma: "198.51.100.3", holding: 600})},
	} {
		if got := codes(r.recvAt(tc.from, tc.b, t0.Add(time.Second))); !cmp.Equal(got, []string{"success"}) {
			t.Errorf("%s: answered %v, want one success", tc.name, got)
		}
	}
	if got := r.counter("drop_retransmit_answered"); got != 0 {
		t.Errorf("drop_retransmit_answered = %d, want 0", got)
	}
}

// TestCrossingRemembersOnlyWhatWaited: a hub that keeps up (the request
// waited less than the shortest retransmission timer) remembers nothing.
func TestCrossingRemembersOnlyWhatWaited(t *testing.T) {
	r := newRig(t)
	now := r.net.Clock.Now()
	req := registration(t, "198.51.100.2", "10.255.0.2", 7, false, cie{proto: "10.255.0.2", nbma: "198.51.100.2", holding: 600})
	r.recvAt("198.51.100.2", req, now.Add(-100*time.Millisecond))
	if got := codes(r.recvAt("198.51.100.2", req, now.Add(-50*time.Millisecond))); !cmp.Equal(got, []string{"success"}) {
		t.Errorf("copy of a request answered at once: answered %v, want one success", got)
	}
	if got := r.counter("drop_retransmit_answered"); got != 0 {
		t.Errorf("drop_retransmit_answered = %d, want 0", got)
	}
}

// TestCrossingWithoutReceiveTime: a packet without a receive time
// (HandlePacket) is never taken for a crossed retransmission.
func TestCrossingWithoutReceiveTime(t *testing.T) {
	r, req, _ := crossingRig(t)
	if got := codes(r.recv("198.51.100.2", req)); !cmp.Equal(got, []string{"success"}) {
		t.Errorf("copy without a receive time answered %v, want one success", got)
	}
}

// TestCrossingIgnoresRefusals: a refused request is not remembered: its
// retransmission is served again (and may succeed then).
func TestCrossingIgnoresRefusals(t *testing.T) {
	r := newRig(t)
	t0 := r.net.Clock.Now()
	r.advance(2 * time.Second)
	req := registration(t, "198.51.100.2", "10.9.9.9", 7, false, cie{proto: "10.9.9.9", nbma: "198.51.100.2", holding: 600})
	for i, at := range []time.Time{t0, t0.Add(time.Second)} {
		if got := codes(r.recvAt("198.51.100.2", req, at)); len(got) != 1 || got[0] == "success" {
			t.Errorf("transmission %d: answered %v, want one refusal", i+1, got)
		}
	}
}

// TestCrossingForgetsOnceCaughtUp: once a packet received after an answer
// is handled, nothing queued can have crossed it (the socket delivers in
// order), and the answer is forgotten: a copy carrying an earlier receive
// time is then served.
func TestCrossingForgetsOnceCaughtUp(t *testing.T) {
	r, req, t0 := crossingRig(t)
	other := registration(t, "198.51.100.3", "10.255.0.3", 9, false, cie{proto: "10.255.0.3", nbma: "198.51.100.3", holding: 600})
	r.recvAt("198.51.100.3", other, t0.Add(3*time.Second))
	if got := codes(r.recvAt("198.51.100.2", req, t0.Add(time.Second))); !cmp.Equal(got, []string{"success"}) {
		t.Errorf("after catching up: answered %v, want one success", got)
	}
}
