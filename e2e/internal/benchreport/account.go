package benchreport

import (
	"fmt"
	"slices"
	"strings"
)

// Account says where the requests of one burst went. The generator
// counts what it sent and the answers it received (success and refusals
// alike); every request without an answer is missing at one of the
// places below, each read from a counter over the burst:
//
//	Sent - Answered = Transit + SocketDrops + EngineDrops + Unaccounted + GenRxDrops + ReplyMissed
//
// Transit and ReplyMissed are differences of the namespaces' IPv4
// counters (nstat), not causes: SoftnetDrops (the guest's input backlog,
// /proc/net/softnet_stat) is the cause the kernel counts for the first.
type Account struct {
	Sent     int `json:"sent"`     // requests the generator sent (retransmissions included)
	Answered int `json:"answered"` // replies and error indications it received
	// HubReceived and HubSent are the IPv4 packets the hub's namespace
	// received and sent during the burst (IpInReceives, IpOutRequests):
	// NHRP requests and replies, its only IPv4 traffic then.
	HubReceived int `json:"hub_received"`
	HubSent     int `json:"hub_sent"`
	// Transit is Sent - HubReceived: lost between the generator's
	// socket and the hub's IP layer.
	Transit      int `json:"transit"`
	SoftnetDrops int `json:"softnet_drops"`
	// SocketDrops is the hub's NHRP packet socket dropping requests
	// because its receive buffer was full (ss -0 -m: skmem d); -1 when
	// the socket was not found.
	SocketDrops int `json:"hub_socket_drops"`
	// EngineDrops is what the hub's daemon dropped without an answer:
	// for dmvpnd its drop_ counters minus its refused registrations
	// (those are answered); -1 for FRR, which counts none.
	EngineDrops int `json:"hub_engine_drops"`
	// Unaccounted is what the hub received and neither answered nor
	// counted as dropped.
	Unaccounted int `json:"hub_unaccounted"`
	// GenRxDrops is the answers the generator's socket dropped (buffer
	// full); ReplyMissed the rest of HubSent - Answered: answers the
	// hub sent after the generator had stopped listening.
	GenRxDrops  int `json:"gen_rx_drops"`
	ReplyMissed int `json:"reply_missed"`
}

// accounts sums the accounts of bs; a figure unknown in any (-1) is -1.
func accounts(bs []Burst) (Account, bool) {
	var t Account
	found := false
	for _, b := range bs {
		a := b.Account
		if a == nil {
			continue
		}
		found = true
		t.Sent += a.Sent
		t.Answered += a.Answered
		t.HubReceived += a.HubReceived
		t.HubSent += a.HubSent
		t.Transit += a.Transit
		t.SoftnetDrops += a.SoftnetDrops
		t.Unaccounted += a.Unaccounted
		t.GenRxDrops += a.GenRxDrops
		t.ReplyMissed += a.ReplyMissed
		for _, f := range []struct{ sum, v *int }{{&t.SocketDrops, &a.SocketDrops}, {&t.EngineDrops, &a.EngineDrops}} {
			if *f.sum >= 0 && *f.v >= 0 {
				*f.sum += *f.v
			} else {
				*f.sum = -1
			}
		}
	}
	return t, found
}

// known renders a count, "-" when unknown (-1).
func known(v int) string {
	if v < 0 {
		return "-"
	}
	return fmt.Sprint(v)
}

// accountTable renders where the requests went, summed over repetitions.
func (r *Results) accountTable(w *strings.Builder) {
	if !slices.ContainsFunc(r.Bursts, func(b Burst) bool { return b.Account != nil }) {
		return
	}
	w.WriteString("\nWhere the requests went, summed over repetitions (sent - answered = in transit + hub socket drops + hub engine drops + hub unaccounted + generator socket drops + answered after the generator stopped; " +
		"in transit: sent - the hub namespace's IpInReceives, of which the guest's softnet backlog drops; hub socket drops: the hub's NHRP packet socket's skmem d (receive buffer full); " +
		"hub engine drops: dmvpnd's nhrp_drop_ counters minus nhrp_registrations_refused (FRR counts none: \"-\"); hub unaccounted: received, neither answered nor counted):\n\n")
	w.WriteString("| N | impl | sent | answered | in transit (softnet drops) | hub socket drops | hub engine drops | hub unaccounted | generator socket drops | answered after the generator stopped |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, n := range r.Sizes {
		for _, impl := range []string{DMVPND, FRR} {
			a, ok := accounts(r.bursts(impl, n))
			if !ok {
				continue
			}
			fmt.Fprintf(w, "| %d | %s | %d | %d | %d (%d) | %s | %s | %d | %d | %d |\n", n, impl, a.Sent, a.Answered,
				a.Transit, a.SoftnetDrops, known(a.SocketDrops), known(a.EngineDrops), a.Unaccounted, a.GenRxDrops, a.ReplyMissed)
		}
	}
}
