// Package api is dmvpnd's control API: the status model the controller fills
// (peers, NHS, NHRP cache, shortcuts, IPsec SAs, BGP, counters), a Server
// serving it as JSON over HTTP on a unix socket, and the Client dmvpnctl uses.
//
// Routes (all under /v1):
//
//	GET  /v1/status               Status (readiness)
//	GET  /v1/dmvpn                DMVPN (peers and NHS, the "show dmvpn" view)
//	GET  /v1/nhrp/cache           []CacheEntry
//	GET  /v1/nhrp/nhs             []NHS
//	GET  /v1/nhrp/shortcuts       []Shortcut
//	GET  /v1/ipsec                []SA
//	GET  /v1/bgp/summary          BGPSummary
//	GET  /v1/counters             Counters
//	POST /v1/nhrp/cache/clear     ClearResult
//	POST /v1/nhrp/shortcuts/clear ClearResult
//	GET  /v1/dmvpn/peers          []PeerDetail (every peer)
//	GET  /v1/dmvpn/peers/{addr}   []PeerDetail (tunnel or NBMA address)
//	POST /v1/dmvpn/peers/{addr}/clear PeerClear
//	POST /v1/nhrp/registrations/{addr}/clear ClearResult
//	GET  /v1/qos                  []QoSPeer (per-tunnel QoS shapers and their counters)
//	GET  /v1/qos/{addr}           []QoSPeer (tunnel or NBMA address)
//	POST /v1/reload               ReloadRequest -> ReloadResult: re-read and apply the file, or dry run
//	GET  /v1/config               RunningConfig (effective configuration, secrets redacted)
//	GET  /v1/log-level            LogLevel
//	PUT  /v1/log-level            LogLevel
//
// Errors are {"error": "..."} with a non-2xx status; the Client returns them
// as *Error.
package api
