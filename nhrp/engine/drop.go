package engine

import "fmt"

// DropReason is why the engine dropped a packet, refused (part of) a
// request or sent nothing. It is the one enumeration shared by the
// engine's counters ("drop_" + String()), the controller's counters and
// the metrics' reason label: every drop or refusal increments exactly one
// drop counter.
type DropReason uint8

// Drop reasons. Those marked "refusal" answer the sender (a CIE code or an
// Error Indication); the others drop silently.
const (
	// Decoding and authentication.
	DropMalformed   DropReason = iota + 1 // does not decode
	DropChecksum                          // bad ar$chksum
	DropHopCount                          // hop count exhausted
	DropAuth                              // authentication extension missing or wrong (refusal: error 11)
	DropUnknownExt                        // unknown compulsory extension (refusal: error 4)
	DropSelf                              // our own NBMA as source
	DropRateLimited                       // source over its CIE rate
	// Protection (Config.IPsec).
	DropUntrusted     // received from an NBMA no IPsec SA proves
	DropAmbiguousSA   // received from or sending to an NBMA two SAs (identities or outer addresses) claim
	DropSendNoSA      // nothing sent: no SA proves the destination NBMA
	DropClaimMismatch // refusal: a claimed NBMA is not the one the SA proves (CIE 4)
	// Address ownership (registrations; refusals with CIE code 4 or 14).
	DropNotAcceptable // outside AcceptPrefixes/TunnelPrefix, or not a host entry
	DropReserved      // the NHS's own, another NHS's, network or broadcast address
	DropNotBound      // not among the addresses bound to the identity
	DropAddressQuota  // the peer would hold more than AddressesPerPeer
	DropOwned         // held by another peer
	DropSourceQuota   // the source holds MaxCachePerSource cache entries
	DropCacheFull     // MaxCache reached
	// Resolution, purge, error and traffic indications.
	DropNotServer      // NHS-only request on a client
	DropUnmatched      // reply or error indication matches no request of ours
	DropWrongResponder // reply, error indication or purge not from the peer asked or the entry's owner
	DropNotRegistered  // transit: reply for a client not registered at its sender
	DropPrefixTooWide  // reply prefix not covered by the route it would replace
	DropNotNHS         // traffic indication not from a configured NHS
	DropLoop           // our own request or address came back
	DropNoRoute        // nowhere to forward, or a negative answer sent
	DropUnexpected     // a packet this role does not take
	DropPendingFull    // MaxPending outstanding requests
	DropFlowsFull      // MaxFlows hub flows
	DropBadHairpin     // hairpinned data packet not IPv4/IPv6
	DropNotIngress     // traffic indication for a source reached over the tunnel
	DropNegative       // resolution suppressed by a negative entry
	DropIndicationRate // traffic indication within IndicationEvery of the last
	// NHRP group (Per-Tunnel QoS).
	DropGroupInvalid // a Cisco vendor-private extension that is not a valid group: the claim is ignored, the packet served
	// Load.
	DropRetransmitAnswered // a retransmitted Registration Request queued before its answer went out (crossing.go)
	dropReasonEnd
)

var dropNames = [...]string{
	DropMalformed:      "malformed",
	DropChecksum:       "checksum",
	DropHopCount:       "hop_count",
	DropAuth:           "auth",
	DropUnknownExt:     "unknown_compulsory_extension",
	DropSelf:           "from_self",
	DropRateLimited:    "rate_limited",
	DropUntrusted:      "untrusted",
	DropAmbiguousSA:    "ambiguous_sa",
	DropSendNoSA:       "send_no_sa",
	DropClaimMismatch:  "claim_mismatch",
	DropNotAcceptable:  "not_acceptable",
	DropReserved:       "reserved_address",
	DropNotBound:       "not_bound",
	DropAddressQuota:   "address_quota",
	DropOwned:          "owned_by_another_peer",
	DropSourceQuota:    "source_quota",
	DropCacheFull:      "cache_full",
	DropNotServer:      "not_server",
	DropUnmatched:      "unmatched_reply",
	DropWrongResponder: "wrong_responder",
	DropNotRegistered:  "not_registered",
	DropPrefixTooWide:  "prefix_too_wide",
	DropNotNHS:         "not_nhs",
	DropLoop:           "loop",
	DropNoRoute:        "no_route",
	DropUnexpected:     "unexpected",
	DropPendingFull:    "pending_full",
	DropFlowsFull:      "flows_full",
	DropBadHairpin:     "bad_hairpin",
	DropNotIngress:     "not_ingress",
	DropNegative:       "negative_cached",
	DropIndicationRate: "indication_rate",
	DropGroupInvalid:   "group_invalid",

	DropRetransmitAnswered: "retransmit_answered",
}

// String is the reason's name: the metrics label and, after "drop_", the
// counter name.
func (r DropReason) String() string {
	if r > 0 && r < dropReasonEnd {
		return dropNames[r]
	}
	return fmt.Sprintf("reason_%d", uint8(r))
}

// Counter is the name of the engine counter r increments.
func (r DropReason) Counter() string { return "drop_" + r.String() }

// AllDropReasons lists every reason, in declaration order.
func AllDropReasons() []DropReason {
	out := make([]DropReason, 0, dropReasonEnd-1)
	for r := DropReason(1); r < dropReasonEnd; r++ {
		out = append(out, r)
	}
	return out
}

// drop counts one drop or refusal for r.
func (e *Engine) drop(r DropReason) { e.counters.inc(r.Counter()) }
