package controller

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/controller/config"
	"github.com/dmvpnd/dmvpnd/controller/metrics"
	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/routing"
)

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// NewSystem builds a controller over the real kernel, strongSwan and GoBGP
// of the current network namespace. It opens a netlink handle but changes
// nothing until Run.
func NewSystem(cfg *config.Config, log *zap.Logger, m *metrics.Metrics) (*Controller, error) {
	if log == nil {
		log = zap.NewNop()
	}
	k, err := kernel.New(kernel.Config{Logger: log.Named("kernel")})
	if err != nil {
		return nil, err
	}
	deps := Deps{
		Dataplane: k,
		Misses:    k,
		Lookup:    k,
		Listen: func(ifindex int) (kernel.PacketConn, error) {
			return kernel.ListenNHRP(kernel.ListenNHRPConfig{Ifindex: ifindex})
		},
		DeviceAddr: k.DeviceIPv4,
		SizeNeighborTable: func(peers int) error {
			return kernel.SizeNeighborTable(kernel.ProcSysctl{}, peers)
		},
		Guard:   kernel.NewGREGuard(kernel.GuardConfig{}),
		Clock:   systemClock{},
		Log:     log,
		Metrics: m,
	}
	if cfg.NHRP.Role == config.RoleHub && cfg.NHRP.Redirect {
		trap, err := kernel.NewHairpinTrap(kernel.HairpinConfig{}, log.Named("hairpin"))
		if err != nil {
			return nil, err
		}
		deps.Hairpins = trap
	}
	if mc := cfg.NHRP.Multicast; mc.Enabled() {
		trap, err := kernel.NewMulticastTrap(kernel.MulticastConfig{Groups: mc.Groups}, log.Named("multicast"))
		if err != nil {
			return nil, err
		}
		deps.Multicast = trap
		deps.ListenMulticast = func(ifindex int) (MulticastSender, error) {
			return kernel.ListenMulticast(kernel.ListenMulticastConfig{Ifindex: ifindex})
		}
	}
	if cfg.IPsec.Enabled {
		nbma, err := localNBMA(cfg, k.DeviceIPv4)
		if err != nil {
			return nil, err
		}
		mgr, err := ipsec.New(ipsecConfig(cfg, nbma, log))
		if err != nil {
			return nil, err
		}
		deps.IPsec = mgr
	}
	if cfg.BGP.Enabled {
		rc, err := routingConfig(cfg)
		if err != nil {
			return nil, err
		}
		deps.NewBGP = func(sink routing.RouteSink) (BGP, error) {
			return routing.NewSpeaker(rc, routing.WithLogger(log.Named("bgp")),
				routing.WithRouteSink(sink, routing.FIBOptions{}))
		}
	}
	return New(cfg, deps)
}

// ipsecConfig derives the strongSwan manager's configuration.
func ipsecConfig(cfg *config.Config, nbma netip.Addr, log *zap.Logger) ipsec.Config {
	ic := ipsec.Config{
		SocketPath:   cfg.IPsec.ViciSocket,
		LocalNBMA:    nbma,
		IKEProposals: cfg.IPsec.Proposals.IKE,
		ESPProposals: cfg.IPsec.Proposals.ESP,
		Logger:       log.Named("ipsec"),
		// Peers behind NAT initiate tunnel-mode SAs whose inner address is
		// their claimed NBMA: without these the responder connection
		// refuses them (TS_UNACCEPTABLE) and they never register.
		NATInnerPrefixes: natInnerPrefixes(),
	}
	switch cfg.IPsec.Auth.Method {
	case config.AuthX509:
		ic.Auth = ipsec.Auth{Method: ipsec.AuthX509, CertFile: cfg.IPsec.Auth.Cert,
			KeyFile: cfg.IPsec.Auth.Key, CAFile: cfg.IPsec.Auth.CA}
	default:
		ic.Auth = ipsec.Auth{Method: ipsec.AuthPSK, PSK: ipsec.NewSecret(cfg.IPsec.Auth.PSK.Reveal())}
	}
	return ic
}

// natInnerPrefixes are the claimed NBMA addresses a peer behind NAT may use
// as the inner address of a tunnel-mode SA it initiates to this node's
// responder connection (protocol-notes §4): the private ranges of RFC 1918
// and the carrier-grade NAT range of RFC 6598. The ipsec Manager still
// terminates any such SA whose inner address is not bound to the peer's
// IKE identity.
func natInnerPrefixes() []netip.Prefix {
	return []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("100.64.0.0/10"),
	}
}

// routingConfig derives the BGP speaker's configuration.
func routingConfig(cfg *config.Config) (routing.Config, error) {
	b := cfg.BGP
	rc := routing.Config{
		ASN:      b.ASN,
		RouterID: b.RouterID,
		Prefixes: b.Prefixes,
		API:      grpcAPI(b.GRPCListen),
	}
	if !rc.RouterID.IsValid() {
		rc.RouterID = cfg.Tunnel.Address.Addr()
	}
	if b.Listen.IsValid() {
		rc.ListenAddress, rc.ListenPort = b.Listen.Addr(), int(b.Listen.Port())
	}
	switch cfg.NHRP.Role {
	case config.RoleHub:
		rc.Role = routing.RoleHub
		if !b.Listen.IsValid() {
			rc.ListenAddress = cfg.Tunnel.Address.Addr()
		}
		rc.Hub = routing.HubConfig{DynamicRange: b.Dynamic.Prefix, Summaries: b.Summaries,
			EBGPSpokes: b.Dynamic.ASN != 0 && b.Dynamic.ASN != b.ASN}
		if !rc.Hub.DynamicRange.IsValid() {
			rc.Hub.DynamicRange = cfg.Tunnel.Address.Masked()
		}
		rc.Hub.Mode = routing.HubModeReflect
		if b.HubMode == config.HubSummary {
			rc.Hub.Mode = routing.HubModeSummary
		}
		for _, n := range b.Neighbors {
			rc.Hub.Peers = append(rc.Hub.Peers, routing.Neighbor{Address: n.Address, PeerAS: n.ASN,
				LocalAddress: cfg.Tunnel.Address.Addr()})
		}
	case config.RoleSpoke:
		rc.Role = routing.RoleSpoke
		if !b.Listen.IsValid() {
			rc.ListenPort = -1
		}
		for _, n := range b.Neighbors {
			rc.Spoke.Hubs = append(rc.Spoke.Hubs, routing.Neighbor{Address: n.Address, PeerAS: n.ASN,
				LocalAddress: cfg.Tunnel.Address.Addr()})
		}
	default:
		return routing.Config{}, fmt.Errorf("controller: unknown role %q", cfg.NHRP.Role)
	}
	return rc, nil
}

// grpcAPI turns the config's grpc_listen ("host:port" or "unix:/path", as
// config.BGP documents it) into the routing package's API address, which
// spells unix sockets "unix:///path".
func grpcAPI(listen string) string {
	path, ok := strings.CutPrefix(listen, "unix:")
	if !ok {
		return listen
	}
	return "unix://" + filepath.Clean(path)
}
