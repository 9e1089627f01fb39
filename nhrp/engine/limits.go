package engine

import "maps"

// Counter names. Drops are counted by DropReason (drop.go).
const (
	cRxPackets          = "rx_packets"
	cHeldForSA          = "rx_held_for_sa"    // received before the SA proving the source: held (sawait.go)
	cReleasedBySA       = "rx_released_by_sa" // held, then handled when the SA was reported
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
