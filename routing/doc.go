// Package routing carries the DMVPN overlay's routes with an embedded GoBGP
// (github.com/osrg/gobgp/v3) speaker and turns the best paths into kernel
// routes.
//
// # Pieces
//
//   - Config and BuildPlan: the node's BGP configuration and its pure
//     translation into GoBGP API requests (StartBgp, policies, the hub's peer
//     group and dynamic neighbor, static neighbors). OriginateRequest and
//     WithdrawRequest build the AddPath/DeletePath requests for LAN prefixes.
//   - Speaker: the embedded server (Start, Stop, Reconfigure and SetPrefixes for reloads,
//     Summary (ctx-aware) and Stats, Events for neighbor state changes,
//     SetProtected for learned NBMA addresses, SetRegistered for the hub's
//     registered tunnel addresses). GoBGP logs through the injected zap
//     logger.
//   - FIB: best paths from GoBGP's watch API (BEST, with the initial table)
//     become the desired set of Routes, handed synchronously to a RouteSink
//     (the controller, which applies them to the kernel with its other
//     routes and retries refused routes with backoff; routingtest.Sink in
//     tests). The FIB decides, the controller applies: one reconciler.
//
// # Import policy (guard.go, policy.go)
//
// One GoBGP import policy (global assignment, default REJECT) applies to
// every neighbor: locally originated paths pass; the default route is
// rejected unless Import.AcceptDefault and it comes from a hub; anything
// overlapping the tunnel prefix or a Protected prefix (NBMA addresses, the
// underlay route: no recursive routing), and the node's LAN prefixes and
// their more-specifics are rejected; next hops outside the tunnel prefix or
// on its network/broadcast address are rejected; then Import.Accept ranges
// (one prefix set and statement each: GoBGP matches a set by its longest
// key only) accept. On a hub a spoke's path is accepted only with the
// spoke's own session address as next hop; anything else is rejected, not
// rewritten. GoBGP has no "next hop is the neighbor's address" condition
// and import policies per neighbor only for route-server clients
// (pkg/server/server.go toPolicyInfo), so spokes.go keeps one statement
// per spoke and Accept range (neighbor set = the spoke's /32, next hop in
// [spoke/32]) in the global import policy while GoBGP has the dynamic
// neighbor (also during its graceful restart), and soft-resets the spoke's
// Adj-RIB-In after adding them. The FIB applies the same guard (and the
// spoke next-hop rule) again before installing. Rejected paths stay in
// GoBGP's Adj-RIB-In and are counted per neighbor and reason
// (NeighborSummary.PrefixesRejected and RejectedReasons, "gobgp neighbor X
// adj-in" filtered).
//
// # Limits
//
// MaxPrefixes with "teardown" is GoBGP's prefix limit (Cease subcode 1,
// NeighborSummary.MaxPrefixTeardowns); with "drop" the FIB installs only
// the first MaxPrefixes of a neighbor. "drop" is for spokes only: GoBGP's
// prefix limit has no drop mode (pkg/server/peer.go doPrefixLimit returns a
// Cease or nothing), so GoBGP keeps the excess in its RIB, and a hub would
// reflect it to every other spoke; Validate refuses "drop" on a hub. (A
// spoke exports only what it originates, so nothing leaks there.) GoBGP has no dynamic-neighbor cap and
// no accept hook, so the peer guard (peers.go) deletes a dynamic neighbor
// on its first peer event (TCP accepted, before the OPEN exchange) when it
// is over Hub.DynamicLimit or, with Hub.RequireRegistration, not registered.
//
// # TCP MD5
//
// Config.Password (or Neighbor.Password) signs every session (RFC 2385):
// GoBGP sets the key on the dialer and, for the hub's dynamic range, per
// prefix on the listener. GoBGP only logs a warning when the listener's
// key cannot be set and then accepts unsigned sessions, so Start probes
// the kernel first and fails with ErrTCPMD5Unsupported (kernels without
// CONFIG_TCP_MD5SIG, or an MPTCP listener: ErrMPTCPListener). Go 1.24+
// makes listeners MPTCP by default where the kernel has MPTCP, and
// setsockopt(TCP_MD5SIG) on an MPTCP socket fails with ENOPROTOOPT even
// on a kernel with TCP MD5, so go.mod sets GODEBUG multipathtcp=0
// (TestTCPMD5RefusedOnMPTCPListener). TestIntegrationTCPMD5 runs where the
// kernel has TCP MD5 (the lab's VMs, TestPrivileged, and hosts); on other
// kernels it is skipped and TestSpeakerTCPMD5Unsupported runs instead.
//
// # gRPC API
//
// Read-only unless Config.APIWrite: an interceptor serves only List*, Get*
// and Watch* methods and refuses the rest with PermissionDenied
// (ErrAPIReadOnly). A unix socket gets mode 0660 and Config.APIGroup.
//
// # Hub and spoke
//
// A hub accepts spokes as dynamic neighbors from the tunnel prefix through
// one peer group (passive; no per-spoke configuration). Spokes open sessions
// to every configured hub's tunnel address (several hubs are fine: the same
// routes arrive from each). Spokes do not listen by default in tests; in
// production ListenPort 0 means 179.
//
// Hub modes:
//
//   - reflect (DMVPN Phase 2): the spokes are route-reflector clients (iBGP)
//     and their LAN prefixes are reflected with the NEXT_HOP unchanged, so a
//     spoke routes another spoke's LAN via that spoke's tunnel address. With
//     EBGPSpokes (each spoke its own AS) an export policy
//     "nexthop unchanged" for eBGP-learned routes does the same.
//   - summary (DMVPN Phase 3): one global export policy accepts only locally
//     originated routes (the hub's LAN prefixes and the configured summaries
//     or default route) with next-hop-self and rejects everything else, so
//     spoke routes are never passed on. This works the same for iBGP and
//     eBGP spokes and leaves the peer group untouched; the hub itself still
//     learns and installs every spoke's routes.
//
// Spokes export only what they originate (a spoke is never a transit between
// two hubs).
//
// # Reload (reconfigure.go)
//
// Speaker.Reconfigure applies a new Config to the running server and
// leaves what did not change alone: static neighbors are added, deleted or
// updated one by one (an unchanged neighbor keeps its session; GoBGP's
// UpdatePeer restarts a session only when its OPEN or TCP MD5 key changes,
// and applies a new prefix limit at once); the import policy is replaced
// whole (SetPolicies, with the hub's current per-spoke statements, while
// the per-spoke loop is stopped) and re-applied with a soft reset in, so
// no session restarts for a policy change. GoBGP gives a peer group's
// settings to a dynamic neighbor only when it accepts its session, and sets
// the dynamic range's TCP MD5 key on the listener only in
// AddDynamicNeighbor, so a change of the spokes' settings (password,
// max-prefix, timers) re-adds the range and closes the spoke sessions,
// which reconnect under the new settings. The local AS, router id,
// listener, API, role, tunnel, dynamic range, peer group, cluster id, hub
// mode, eBGP spokes and graceful restart are refused (RestartError):
// GoBGP's SetPolicies keeps the policy assignments, so the export policy
// cannot come or go, and the rest is StartBgp's or in every OPEN.
//
// # Kernel routes and NHRP
//
// Every Route is meant to be installed through the tunnel device with the
// next hop as given ("onlink", dmvpnd's route protocol). A next hop that is
// another spoke's tunnel address has no neighbor entry at first; the kernel's
// neighbor miss makes dmvpnd resolve it with NHRP (Phase 2). Routes for the
// node's own prefixes or via its own addresses are never installed.
//
// NHRP shortcut routes beat BGP routes in two ways: a shortcut for a remote
// LAN is usually more specific than a Phase 3 summary (longest-prefix match),
// and for an equal prefix length the controller gives shortcuts a lower
// metric than FIBConfig.Metric (DefaultRouteMetric = 20), so both routes can
// coexist in the table and the shortcut wins while it exists.
//
// # gobgp CLI
//
// Config.API makes GoBGP serve its gRPC API on a loopback host:port or a
// unix socket ("unix:///run/dmvpnd/gobgp.sock"); the API has no
// authentication, so other TCP addresses are refused, and it is read-only
// by default. Start returns only
// once the API accepts connections. The stock CLI works against it:
//
//	gobgp --target unix:///run/dmvpnd/gobgp.sock neighbor
//	gobgp --target unix:///run/dmvpnd/gobgp.sock global rib
//	gobgp -u 127.0.0.1 -p 50051 neighbor 10.0.0.12 adj-in
//
// Debian's gobgp 3.10.0 (package gobgpd) and a CLI built from the module
// version in go.mod (go build github.com/osrg/gobgp/v3/cmd/gobgp, 3.37.0)
// both work against the 3.37.0 server; TestGobgpCLI runs both.
//
// # GoBGP limitations worth knowing
//
//   - BgpServer.Serve never returns, so one goroutine per started speaker
//     outlives Stop.
//   - GoBGP never sends a path to an eBGP peer whose AS is already in the
//     path, and peer groups have no as-override through the API: eBGP spokes
//     in reflect mode need distinct ASes.
//   - osrg/gobgp#2167 (busy loop when the dynamic range contains the
//     server's own address, the normal DMVPN case): not reproduced with
//     3.37.0; TestIntegrationHubIdleCPU guards it.
//   - osrg/gobgp#1939 (stale graceful-restart routes of dynamic peers):
//     GracefulRestart is optional (off by default); with it GoBGP keeps a
//     dynamic peer that went down gracefully until its restart timer ends.
//   - Graceful restart covers a session that ends without a NOTIFICATION
//     (a crash, kill -9, a lost connection, an expired hold timer):
//     TestIntegrationGracefulRestart kills a spoke's process; the hub keeps
//     its routes as stale, its FIB never withdraws them, and after the
//     restarted spoke's End-of-RIB what it no longer announces is removed.
//     Speaker.Stop is not graceful: GoBGP's StopBgp sends
//     Cease/peer-deconfigured to every neighbor (server.go StopBgp,
//     deleteNeighbor), which ends graceful restart on the peer (fsm.go,
//     the stateReasonCh case of establishedState; with RFC 8538 it is sent
//     as a Hard Reset), and GoBGP has no call that closes sessions
//     silently: a stopped speaker's routes are withdrawn on every peer at
//     once (TestIntegrationGracefulRestartCease). Speaker.StopGraceful
//     resets the sessions with Cease/administrative-reset first, which a
//     peer that negotiated RFC 8538 (GracefulRestart advertises the N bit)
//     handles as a graceful restart, and stops the server once no session
//     is left (TestIntegrationGracefulStop). The controller stops with
//     StopGraceful when bgp.graceful_restart is on, with Stop otherwise
//     (controller TestStopKeepsRoutesOnPeers).
//   - GoBGP keeps route-selection options in package globals; all speakers
//     in one process use the defaults, so that is harmless here.
package routing
