// Package config defines the YAML file that describes one dmvpnd node (a hub or
// a spoke), loads it with viper (file plus DMVPND_SECTION_KEY environment
// overrides), and validates it before the daemon touches anything.
//
// Every error names the offending field by its path in the file and says why,
// for example:
//
//	config: nhrp.nhs[1].nbma: "300.1.1.1" is not an IPv4 or IPv6 address
//
// Unknown keys are rejected. Addresses are net/netip values and secrets are
// [ipsec.Secret] values that never print their contents.
package config
