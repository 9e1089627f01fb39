package config

import (
	"bytes"
	"fmt"
	"net/netip"
	"reflect"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// EnvPrefix prefixes environment overrides: DMVPND_NHRP_HOLDING_TIME=600s
// overrides nhrp.holding_time. Lists of scalars are comma-separated; lists of
// mappings (nhrp.nhs, bgp.neighbors) can only be set in the file.
const EnvPrefix = "DMVPND"

// DefaultViciSocket is the VICI socket of the charon the package runs for
// dmvpnd alone (deploy/systemd/dmvpnd-charon.service, RuntimeDirectory
// dmvpnd-charon; its strongswan.conf is rendered with this path). It is
// not under /run/dmvpnd: systemd removes dmvpnd's runtime directory when
// dmvpnd stops, and charon keeps running across dmvpnd restarts.
const DefaultViciSocket = "/run/dmvpnd-charon/charon.vici"

// defaults are applied beneath the file and the environment. They are the
// only defaults of these keys: the packages the keys configure get every
// value from here. IPsec proposals have none on purpose: empty lets the
// ipsec package offer the defaults the running charon implements.
var defaults = map[string]any{
	"tunnel.name":                       "gre1",
	"tunnel.mtu":                        1400,
	"nhrp.holding_time":                 "7200s",
	"nhrp.registration":                 string(RegistrationUnique),
	"nhrp.limits.cache_size":            10000,
	"nhrp.limits.pending":               256,
	"nhrp.limits.per_source_rate":       10,
	"nhrp.limits.addresses_per_peer":    1,
	"nhrp.limits.per_source_cache":      64,
	"nhrp.multicast.rate":               100,
	"nhrp.multicast.burst":              200,
	"ipsec.vici_socket":                 DefaultViciSocket,
	"ipsec.tunnel_source_binding":       "auto",
	"ipsec.nat_alias_prefix":            "198.18.0.0/15",
	"control.socket":                    "/run/dmvpnd/dmvpnd.sock",
	"bgp.max_prefix_action":             "teardown",
	"bgp.graceful_restart.restart_time": "120s",
	"bgp.graceful_restart.stale_time":   "360s",
	"bgp.timers.hold":                   "90s",
	"metrics.listen":                    "127.0.0.1:9474",
	"log.level":                         string(LogInfo),
	"log.format":                        string(LogJSON),
}

// Load reads the YAML file at path, applies environment overrides and
// defaults, and validates the result. The returned error lists every problem
// found, one "config: path: reason" line each (see FieldErrors).
func Load(path string) (*Config, error) {
	v := newViper()
	v.SetConfigFile(path)
	if err := v.ReadInConfig(); err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	return finish(v)
}

// Parse is Load for a file already in memory.
func Parse(data []byte) (*Config, error) {
	v := newViper()
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		return nil, fmt.Errorf("config: parse: %w", err)
	}
	return finish(v)
}

func newViper() *viper.Viper {
	v := viper.New()
	v.SetConfigType("yaml")
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	for k, d := range defaults {
		v.SetDefault(k, d)
	}
	// viper.Unmarshal ignores environment values unless their keys are
	// known, so bind every scalar leaf of the schema explicitly.
	for _, k := range EnvKeys() {
		_ = v.BindEnv(k) // only fails without a key
	}
	return v
}

func finish(v *viper.Viper) (*Config, error) {
	var c Config
	err := v.Unmarshal(&c, func(dc *mapstructure.DecoderConfig) {
		dc.DecodeHook = decodeHook
		dc.WeaklyTypedInput = false
		dc.ErrorUnused = true
		dc.ZeroFields = true
	})
	if err != nil {
		return nil, translateDecodeError(err)
	}
	c.deriveDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// deriveDefaults fills defaults that depend on other fields.
func (c *Config) deriveDefaults() {
	addr := c.Tunnel.Address.Addr()
	if c.BGP.Enabled && !c.BGP.RouterID.IsValid() && addr.Is4() {
		c.BGP.RouterID = addr
	}
	if c.NHRP.Role == RoleHub && c.BGP.Enabled {
		if c.BGP.HubMode == "" {
			c.BGP.HubMode = HubReflect
		}
		if !c.BGP.Listen.IsValid() && addr.IsValid() {
			c.BGP.Listen = netip.AddrPortFrom(addr, 179)
		}
	}
}

// EnvKeys lists the dotted keys that environment variables can override:
// every scalar and scalar list outside lists and maps of mappings.
func EnvKeys() []string {
	var keys []string
	for _, k := range Keys() {
		if !strings.Contains(k, "[]") && !strings.Contains(k, "*") {
			keys = append(keys, k)
		}
	}
	return keys
}

// Keys lists every leaf key of the file in schema order; fields of list
// elements appear as "nhrp.nhs[].nbma", fields of map values as
// "qos.groups.*.rate".
func Keys() []string {
	var keys []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for f := range t.Fields() {
			tag := f.Tag.Get("mapstructure")
			if tag == "" || tag == "-" {
				continue
			}
			key := joinPath(prefix, tag)
			ft := f.Type
			switch {
			case ft.Kind() == reflect.Struct && !leafTypes[ft]:
				walk(ft, key)
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct && !leafTypes[ft.Elem()]:
				walk(ft.Elem(), key+"[]")
			case ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.Struct:
				walk(ft.Elem(), key+".*")
			default:
				keys = append(keys, key)
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return keys
}

// EnvName is the environment variable overriding key.
func EnvName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}
