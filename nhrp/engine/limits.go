package engine

import (
	"maps"
	"net/netip"
	"time"
)

// Counter names. Drops are counted by DropReason (drop.go).
const (
	cRxPackets          = "rx_packets"
	cTxPackets          = "tx_packets"
	cTxErrors           = "tx_errors"
	cRegAccepted        = "registrations_accepted"
	cRegRefused         = "registrations_refused"
	cResolutionsSent    = "resolutions_sent"
	cResolutionsAnswer  = "resolutions_answered"
	cResolutionsForward = "resolutions_forwarded"
	cResolutionRetrans  = "resolution_retransmits"
	cResolutionTimeout  = "resolution_timeouts"
	cErrorsSent         = "error_indications_sent"
	cErrorsReceived     = "error_indications_received"
	cPurgesSent         = "purges_sent"
	cPurgesReceived     = "purges_received"
	cIndicationsSent    = "traffic_indications_sent"
	cIndicationsRecv    = "traffic_indications_received"
	cProbesSent         = "path_probes_sent"
	cProbeFailures      = "path_probe_failures"
	cBindErrors         = "bind_errors"
)

// counters is a name-indexed counter set.
type counters map[string]uint64

func (c counters) inc(name string) { c[name]++ }

// Counters returns a snapshot of every counter that is non-zero.
func (e *Engine) Counters() map[string]uint64 { return maps.Clone(e.counters) }

// bucket is a token bucket refilled at Config.SourceRate per second.
type bucket struct {
	tokens float64
	last   time.Time
}

// allowSource applies the per-source rate limit to a packet from nbma. The
// table is bounded: when full, idle (refilled) buckets are swept, and if it
// is still full the new source shares one overflow bucket.
func (e *Engine) allowSource(nbma netip.Addr) bool {
	b, ok := e.sources[nbma]
	if !ok {
		if len(e.sources) >= e.cfg.MaxSources {
			e.sweepSources()
		}
		if len(e.sources) >= e.cfg.MaxSources {
			b = &e.overflow
		} else {
			b = &bucket{tokens: e.cfg.SourceBurst, last: e.now}
			e.sources[nbma] = b
		}
	}
	b.tokens += e.now.Sub(b.last).Seconds() * e.cfg.SourceRate
	if b.tokens > e.cfg.SourceBurst {
		b.tokens = e.cfg.SourceBurst
	}
	b.last = e.now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (e *Engine) sweepSources() {
	full := time.Duration(e.cfg.SourceBurst / e.cfg.SourceRate * float64(time.Second))
	for a, b := range e.sources {
		if e.now.Sub(b.last) >= full {
			delete(e.sources, a)
		}
	}
}
