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
//   - Speaker: the embedded server (Start, Stop, SetPrefixes for reloads,
//     Summary and RIB snapshots, Events for neighbor state changes). GoBGP
//     logs through the injected zap logger.
//   - FIB: best paths from GoBGP's watch API (BEST, with the initial table)
//     become the desired set of Routes, pushed to a RouteSink (the kernel
//     package, adapted by the controller; routingtest.Sink in tests),
//     debounced and retried with capped backoff.
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
// authentication, so other TCP addresses are refused. Start returns only
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
//     graceful restart is not enabled.
//   - GoBGP keeps route-selection options in package globals; all speakers
//     in one process use the defaults, so that is harmless here.
package routing
