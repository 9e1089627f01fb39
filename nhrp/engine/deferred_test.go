package engine_test

import (
	"errors"
	"testing"

	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/dmvpnd/dmvpnd/nhrp/engine/nhrpsim"
	"github.com/google/go-cmp/cmp"
)

// deferringBinder queues every write, as the controller does for a batch;
// commit applies the queue to the table, refusing the addresses in refuse,
// and reports the outcomes of the deferred binds to the engine.
type deferringBinder struct {
	table  *nhrpsim.Neigh
	queue  []engine.Binding
	refuse map[string]bool
}

func (d *deferringBinder) Bind(b engine.Binding) error {
	d.queue = append(d.queue, b)
	return engine.ErrBindDeferred
}

func (d *deferringBinder) Unbind(b engine.Binding) { d.table.Unbind(b) }

func (d *deferringBinder) commit(e *engine.Engine) {
	errs := make([]error, len(d.queue))
	for i, b := range d.queue {
		if d.refuse[b.Proto.String()] {
			errs[i] = errors.New("no buffer space available")
			continue
		}
		_ = d.table.Bind(b)
	}
	d.queue = nil
	e.CommitBindings(errs)
}

func TestDeferredBindsHoldReplies(t *testing.T) {
	type reg struct{ from, proto string }
	tests := []struct {
		name      string
		batch     []reg
		refuse    string
		wantCodes []string // per reply, in the order sent
		wantState string
		accepted  uint64
		refused   uint64
	}{
		{
			name:      "refused in the middle of a batch",
			batch:     []reg{{"198.51.100.2", "10.255.0.2"}, {"198.51.100.3", "10.255.0.3"}, {"198.51.100.4", "10.255.0.4"}},
			refuse:    "10.255.0.3",
			wantCodes: []string{"success", "insufficient-resources", "success"},
			wantState: "10.255.0.2 lladdr 198.51.100.2\n10.255.0.4 lladdr 198.51.100.4\n",
			accepted:  2, refused: 1,
		},
		{
			name: "a refresh of a queued entry shares its fate",
			batch: []reg{{"198.51.100.2", "10.255.0.2"}, {"198.51.100.2", "10.255.0.2"},
				{"198.51.100.5", "10.255.0.5"}},
			refuse:    "10.255.0.2",
			wantCodes: []string{"insufficient-resources", "insufficient-resources", "success"},
			wantState: "10.255.0.5 lladdr 198.51.100.5\n",
			accepted:  1, refused: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &deferringBinder{table: &nhrpsim.Neigh{}, refuse: map[string]bool{tc.refuse: true}}
			r := newRig(t, func(c *engine.Config) { c.Binder = d })
			for i, g := range tc.batch {
				if sent := r.recv(g.from, registration(t, g.from, g.proto, uint32(i+1), false, cie{proto: g.proto, holding: 600})); len(sent) != 0 {
					t.Fatalf("registration %d answered before its neighbor entry was written: %v", i, codes(sent))
				}
			}
			n := len(r.sent)
			d.commit(r.node.Engine)
			if err := r.net.Run(); err != nil {
				t.Fatal(err)
			}
			sent := r.sent[n:]
			if d := cmp.Diff(tc.wantCodes, codes(sent)); d != "" {
				t.Errorf("reply codes (-want +got):\n%s", d)
			}
			for i, s := range sent {
				if s.to != addr(tc.batch[i].from) || s.p.RequestID != uint32(i+1) || s.p.CIEs[0].ClientProto != addr(tc.batch[i].proto) {
					t.Errorf("reply %d: to %s id %d for %s, want the reply to request %d", i, s.to, s.p.RequestID, s.p.CIEs[0].ClientProto, i+1)
				}
			}
			if d := cmp.Diff(tc.wantState, d.table.String()); d != "" {
				t.Errorf("neighbor table (-want +got):\n%s", d)
			}
			if _, ok := r.node.Engine.Entry(addr(tc.refuse)); ok {
				t.Errorf("%s stays in the cache although its entry was refused", tc.refuse)
			}
			for name, want := range map[string]uint64{"registrations_accepted": tc.accepted, "registrations_refused": tc.refused, "bind_errors": 1} {
				if got := r.counter(name); got != want {
					t.Errorf("%s = %d, want %d", name, got, want)
				}
			}
		})
	}
}
