package controller

import (
	"fmt"
	"net/netip"
	"os/user"
	"strconv"
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
// nothing until Run. version is the build's version string (Status).
func NewSystem(cfg *config.Config, log *zap.Logger, m *metrics.Metrics, version string) (*Controller, error) {
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
		Guard:    kernel.NewGREGuard(kernel.GuardConfig{}),
		NATSteer: kernel.NewNATSteering(kernel.NATSteerConfig{AliasPrefix: cfg.IPsec.NATAliasPrefix}),
		// Always wired: qos.* keys apply on reload; with no policy the
		// desired state is empty and the kernel keeps nothing of ours.
		QoS:     k,
		Clock:   systemClock{},
		Log:     log,
		Metrics: m,
		Version: version,
	}
	if cfg.NHRP.Role == config.RoleHub {
		// Built on every hub, so that a reload can turn nhrp.redirect on.
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
		deps.NewBGP = func(rc routing.Config, sink routing.RouteSink) (BGP, error) {
			return routing.NewSpeaker(rc, routing.WithLogger(log.Named("bgp")), routing.WithRouteSink(sink))
		}
	}
	return New(cfg, deps)
}

// speakerConfig is routingConfig with the API socket's group resolved
// (control.group), as the speaker starts with it and a reload passes it.
func speakerConfig(cfg *config.Config) (routing.Config, error) {
	rc, err := routingConfig(cfg)
	if err != nil {
		return routing.Config{}, err
	}
	if g := cfg.Control.Group; g != "" {
		grp, err := user.LookupGroup(g)
		if err != nil {
			return routing.Config{}, fmt.Errorf("controller: control.group: %w", err)
		}
		if rc.APIGroup, err = strconv.Atoi(grp.Gid); err != nil {
			return routing.Config{}, fmt.Errorf("controller: control.group %s: gid %q: %w", g, grp.Gid, err)
		}
	}
	return rc, nil
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
		// Each NAT tunnel-mode SA gets marks of its own, so that two
		// spokes behind different NATs with one private NBMA both work
		// (natalias.go steers GRE by them).
		MarkNAT: true,
		// After a restart, the SAs to the peers whose shortcuts the
		// kernel kept (adopt.go) carry their traffic until the new run
		// has re-resolved them and wants the peers again.
		AdoptGrace: adoptGrace,
	}
	switch cfg.IPsec.Auth.Method {
	case config.AuthX509:
		ic.Auth = ipsec.Auth{Method: ipsec.AuthX509, CertFile: cfg.IPsec.Auth.Cert,
			KeyFile: cfg.IPsec.Auth.Key, CAFile: cfg.IPsec.Auth.CA}
		if cfg.IPsec.Auth.BindTunnelAddress {
			ic.LocalID = cfg.Tunnel.Address.Addr().String()
			ic.CertifiedIdentities = true
		}
	default:
		ic.Auth = ipsec.Auth{Method: ipsec.AuthPSK, PSK: cfg.IPsec.Auth.PSK}
	}
	return ic
}

// natInnerPrefixes are the claimed NBMA addresses a peer behind NAT may use
// as the inner address of a tunnel-mode SA it initiates to this node's
// responder connection (docs/strongswan.md, "The responder side"): the private ranges of RFC 1918
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
