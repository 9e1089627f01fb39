package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// MaxAuthLen is the longest NHRP cleartext password Cisco accepts.
const MaxAuthLen = 8

// MinRegistrationInterval is the shortest nhrp.registration_interval: below
// it a spoke's registrations alone would reach the per-source rate limits
// of its hubs.
const MinRegistrationInterval = 100 * time.Millisecond

// validator collects every problem instead of stopping at the first.
type validator struct{ errs []error }

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, fieldErr(path, format, args...))
}

// Validate checks the whole configuration without touching the system and
// returns all problems joined, each a *FieldError.
func (c *Config) Validate() error {
	v := &validator{}
	c.validateTunnel(v)
	c.validateNHRP(v)
	c.validateMulticast(v)
	c.validateIPsec(v)
	c.validateBGP(v)
	c.validateControl(v)
	c.validateQoS(v)
	return errors.Join(v.errs...)
}

func (c *Config) validateTunnel(v *validator) {
	t := c.Tunnel
	if err := checkIfName(t.Name); err != nil {
		v.add("tunnel.name", "%v", err)
	}
	if !t.LocalNBMA.IsValid() && t.UnderlayDevice == "" {
		v.add("tunnel", "set local_nbma or underlay_device (or both)")
	}
	if t.LocalNBMA.IsValid() {
		checkNBMA(v, "tunnel.local_nbma", t.LocalNBMA)
	}
	if t.UnderlayDevice != "" {
		if err := checkIfName(t.UnderlayDevice); err != nil {
			v.add("tunnel.underlay_device", "%v", err)
		}
	}
	switch a := t.Address; {
	case !a.IsValid():
		v.add("tunnel.address", "required (this node's tunnel address with prefix length, like 10.0.0.1/24)")
	case !a.Addr().Is4():
		v.add("tunnel.address", "%s is not IPv4 (only IPv4 tunnels are supported)", a)
	case a.Bits() < 31 && (a.Addr() == a.Masked().Addr() || a.Addr() == lastAddr(a)):
		v.add("tunnel.address", "%s is the network or broadcast address of its prefix", a)
	}
	if t.MTU < 576 || t.MTU > 9000 {
		v.add("tunnel.mtu", "%d is out of range (576..9000)", t.MTU)
	}
	if t.HostAddress && t.Address.IsValid() && t.Address.Bits() == 32 {
		v.add("tunnel.host_address", "tunnel.address %s has no tunnel prefix to route (give its prefix length, like %s/24)", t.Address, t.Address.Addr())
	}
}

func (c *Config) validateNHRP(v *validator) {
	n := c.NHRP
	switch n.Role {
	case RoleHub, RoleSpoke:
	case "":
		v.add("nhrp.role", "required (hub or spoke)")
	default:
		v.add("nhrp.role", "%q is not hub or spoke", n.Role)
	}
	if n.NetworkID == 0 {
		v.add("nhrp.network_id", "required (1..4294967295)")
	}
	ht := n.HoldingTime
	switch {
	case ht < time.Second || ht > 65535*time.Second:
		v.add("nhrp.holding_time", "%s is out of range (1s..65535s)", ht)
	case ht%time.Second != 0:
		v.add("nhrp.holding_time", "%s is not a whole number of seconds", ht)
	}
	if ri := n.RegistrationInterval; ri != 0 {
		switch {
		case len(n.NHS) == 0:
			v.add("nhrp.registration_interval", "only a node with nhrp.nhs registers")
		case ri < MinRegistrationInterval:
			v.add("nhrp.registration_interval", "%s is below %s", ri, MinRegistrationInterval)
		case ri > ht/3:
			v.add("nhrp.registration_interval", "%s is longer than a third of nhrp.holding_time (%s), the default refresh", ri, ht)
		}
	}
	if n.Role == RoleSpoke && len(n.NHS) == 0 {
		v.add("nhrp.nhs", "a spoke needs at least one NHS")
	}
	seen := map[netip.Addr]int{}
	for i, s := range n.NHS {
		p := fmt.Sprintf("nhrp.nhs[%d]", i)
		if !s.NBMA.IsValid() {
			v.add(p+".nbma", "required")
		} else {
			checkNBMA(v, p+".nbma", s.NBMA)
			if j, dup := seen[s.NBMA]; dup {
				v.add(p+".nbma", "%s is already nhrp.nhs[%d]", s.NBMA, j)
			}
			seen[s.NBMA] = i
		}
		if !s.Protocol.Dynamic() {
			c.checkInTunnel(v, p+".protocol", s.Protocol.Addr)
		}
		if s.Priority < 0 || s.Priority > 255 {
			v.add(p+".priority", "%d is out of range (0..255)", s.Priority)
		}
	}
	switch n.Registration {
	case RegistrationUnique, RegistrationNoUnique:
	default:
		v.add("nhrp.registration", "%q is not unique or no-unique", n.Registration)
	}
	if n.Authentication.Len() > MaxAuthLen {
		v.add("nhrp.authentication", "is %d bytes long; the NHRP cleartext password is at most %d", n.Authentication.Len(), MaxAuthLen)
	}
	if n.Redirect && n.Role == RoleSpoke {
		v.add("nhrp.redirect", "only a hub sends redirects (role is spoke)")
	}
	if n.Shortcut && n.Role == RoleHub {
		v.add("nhrp.shortcut", "only a spoke installs shortcuts (role is hub)")
	}
	if n.Limits.CacheSize < 1 {
		v.add("nhrp.limits.cache_size", "%d must be at least 1", n.Limits.CacheSize)
	}
	if n.Limits.Pending < 1 {
		v.add("nhrp.limits.pending", "%d must be at least 1", n.Limits.Pending)
	}
	if !(n.Limits.PerSourceRate > 0) {
		v.add("nhrp.limits.per_source_rate", "%v must be greater than 0", n.Limits.PerSourceRate)
	}
	if n.Limits.AddressesPerPeer < 1 {
		v.add("nhrp.limits.addresses_per_peer", "%d must be at least 1", n.Limits.AddressesPerPeer)
	}
	if n.Limits.PerSourceCache < 1 {
		v.add("nhrp.limits.per_source_cache", "%d must be at least 1", n.Limits.PerSourceCache)
	}
	switch m := n.Limits.MaxHoldingTime; {
	case m == 0:
		c.NHRP.Limits.MaxHoldingTime = n.HoldingTime // the default follows nhrp.holding_time
	case m < time.Second || m > 65535*time.Second || m%time.Second != 0:
		v.add("nhrp.limits.max_holding_time", "%v is not whole seconds from 1s to 65535s", m)
	}
}

func (c *Config) validateControl(v *validator) {
	if !filepath.IsAbs(c.Control.Socket) {
		v.add("control.socket", "%q is not an absolute path", c.Control.Socket)
	}
	if g := c.Control.Group; g != "" && strings.ContainsAny(g, ":/ \t\n") {
		v.add("control.group", "%q is not a valid group name", g)
	}
	if l := c.Metrics.Listen; l != "" {
		if err := checkHostPort(l); err != nil {
			v.add("metrics.listen", "%v", err)
		}
	}
	switch c.Log.Level {
	case LogDebug, LogInfo, LogWarn, LogError:
	default:
		v.add("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case LogJSON, LogConsole:
	default:
		v.add("log.format", "%q is not json or console", c.Log.Format)
	}
}

// checkInTunnel checks that a is a usable address inside the tunnel prefix.
func (c *Config) checkInTunnel(v *validator, path string, a netip.Addr) {
	t := c.Tunnel.Address
	switch {
	case !t.IsValid():
		// Reported on tunnel.address.
	case !t.Masked().Contains(a):
		v.add(path, "%s is outside the tunnel prefix %s", a, t.Masked())
	case a == t.Addr():
		v.add(path, "%s is this node's own tunnel address", a)
	}
}

func checkNBMA(v *validator, path string, a netip.Addr) {
	switch {
	case !a.Is4():
		v.add(path, "%s is not IPv4 (the GRE underlay is IPv4 only)", a)
	case a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		v.add(path, "%s is not a unicast address", a)
	}
}

func checkIfName(name string) error {
	switch {
	case name == "":
		return errors.New("required")
	case len(name) > 15:
		return fmt.Errorf("%q is longer than 15 bytes", name)
	case name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n"):
		return fmt.Errorf("%q is not a valid interface name", name)
	}
	return nil
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil && host != "localhost" {
			return fmt.Errorf("%q: host %q is not an IP address", s, host)
		}
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("%q: port %q is not 1..65535", s, port)
	}
	return nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	u := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	u |= host
	return netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)})
}
