package controller

import (
	"fmt"
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
		SizeNeighborTable: func(peers int) error {
			return kernel.SizeNeighborTable(kernel.ProcSysctl{}, peers)
		},
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
	if cfg.IPsec.Enabled {
		mgr, err := ipsec.New(ipsecConfig(cfg, log))
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
func ipsecConfig(cfg *config.Config, log *zap.Logger) ipsec.Config {
	ic := ipsec.Config{
		SocketPath:   cfg.IPsec.ViciSocket,
		LocalNBMA:    cfg.Tunnel.LocalNBMA,
		IKEProposals: cfg.IPsec.Proposals.IKE,
		ESPProposals: cfg.IPsec.Proposals.ESP,
		Logger:       log.Named("ipsec"),
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
