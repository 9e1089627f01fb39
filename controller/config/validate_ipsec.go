package config

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
)

func (c *Config) validateIPsec(v *validator) {
	s := c.IPsec
	if !s.Enabled {
		return
	}
	if !filepath.IsAbs(s.ViciSocket) {
		v.add("ipsec.vici_socket", "%q is not an absolute path", s.ViciSocket)
	}
	a := s.Auth
	switch a.Method {
	case AuthPSK:
		switch {
		case a.PSK.IsZero() && a.PSKFile == "":
			v.add("ipsec.auth", "method psk needs psk or psk_file")
		case !a.PSK.IsZero() && a.PSKFile != "":
			v.add("ipsec.auth", "set psk or psk_file, not both")
		case vaulted(a.PSK.Reveal()):
			v.add("ipsec.auth.psk", "is Ansible Vault ciphertext, not the key (decrypt it when templating)")
		case a.PSKFile != "":
			checkAbs(v, "ipsec.auth.psk_file", a.PSKFile)
		}
		for _, f := range []struct{ name, val string }{{"cert", a.Cert}, {"key", a.Key}, {"ca", a.CA}} {
			if f.val != "" {
				v.add("ipsec.auth."+f.name, "only used with method x509")
			}
		}
	case AuthX509:
		for _, f := range []struct{ name, val string }{{"cert", a.Cert}, {"key", a.Key}, {"ca", a.CA}} {
			if f.val == "" {
				v.add("ipsec.auth."+f.name, "required with method x509")
			} else {
				checkAbs(v, "ipsec.auth."+f.name, f.val)
			}
		}
		if !a.PSK.IsZero() || a.PSKFile != "" {
			v.add("ipsec.auth", "psk and psk_file are only used with method psk")
		}
	case "":
		v.add("ipsec.auth.method", "required (psk or x509)")
	default:
		v.add("ipsec.auth.method", "%q is not psk or x509", a.Method)
	}
	if a.BindTunnelAddress && a.Method != AuthX509 {
		v.add("ipsec.auth.bind_tunnel_address", "needs method x509: a pre-shared key proves no identity")
	}
	switch s.TunnelSourceBinding {
	case "auto", "on", "off":
	default:
		v.add("ipsec.tunnel_source_binding", "%q is not auto, on or off", s.TunnelSourceBinding)
	}
	c.validateNATAliasPrefix(v)
	checkProposals(v, "ipsec.proposals.ike", s.Proposals.IKE)
	checkProposals(v, "ipsec.proposals.esp", s.Proposals.ESP)
}

// validateNATAliasPrefix: an IPv4 prefix with room for aliases that
// overlaps neither the tunnel prefix nor an NBMA address this node knows
// (its own, an NHS's).
func (c *Config) validateNATAliasPrefix(v *validator) {
	const key = "ipsec.nat_alias_prefix"
	p := c.IPsec.NATAliasPrefix
	switch {
	case !p.IsValid():
		v.add(key, "required")
		return
	case !p.Addr().Is4() || p.Bits() > 30:
		v.add(key, "%s is not an IPv4 prefix of at least 4 addresses", p)
		return
	case p != p.Masked():
		v.add(key, "%s has host bits set (%s)", p, p.Masked())
		return
	}
	if t := c.Tunnel.Address; t.IsValid() && p.Overlaps(t.Masked()) {
		v.add(key, "%s overlaps the tunnel prefix %s", p, t.Masked())
	}
	nbmas := []netip.Addr{c.Tunnel.LocalNBMA}
	for _, n := range c.NHRP.NHS {
		nbmas = append(nbmas, n.NBMA)
	}
	for _, a := range nbmas {
		if a.IsValid() && p.Contains(a) {
			v.add(key, "%s contains the NBMA address %s", p, a)
		}
	}
}

// BindsTunnelSources reports whether the kernel guard binds tunnel-sourced
// GRE to its registered NBMA (ipsec.tunnel_source_binding; auto: hubs).
func (c *Config) BindsTunnelSources() bool {
	if !c.IPsec.Enabled {
		return false
	}
	switch c.IPsec.TunnelSourceBinding {
	case "on":
		return true
	case "off":
		return false
	}
	return c.NHRP.Role == RoleHub
}

// checkProposals checks the spelling of configured proposals; none means
// the ipsec package's defaults, filtered by what charon implements.
func checkProposals(v *validator, path string, ps []string) {
	for i, p := range ps {
		if p == "" || strings.Trim(p, "abcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			v.add(fmt.Sprintf("%s[%d]", path, i), "%q is not a strongSwan proposal (like aes256gcm16-prfsha256-ecp256)", p)
		}
	}
}

func checkAbs(v *validator, path, file string) {
	if !filepath.IsAbs(file) {
		v.add(path, "%q is not an absolute path", file)
	}
}

// Warnings lists what is valid but weak, for --check and the start-up log:
// the residual risks docs/security.md describes.
func (c *Config) Warnings() []string {
	var w []string
	switch {
	case !c.IPsec.Enabled:
		w = append(w, "ipsec.enabled: false: NHRP and overlay traffic are neither authenticated nor encrypted; "+
			"anyone who can send to this node's NBMA address can register, resolve and purge (docs/security.md)")
	case c.IPsec.Auth.Method == AuthPSK:
		w = append(w, "ipsec.auth.method: psk: a group pre-shared key proves no identity; every holder can take a tunnel "+
			"address or NATed NBMA that is not in use (docs/security.md); prefer x509 with bind_tunnel_address")
	case !c.IPsec.Auth.BindTunnelAddress:
		w = append(w, "ipsec.auth.bind_tunnel_address: false: a valid certificate may register any free tunnel address (docs/security.md)")
	}
	return w
}
