package config

import (
	"errors"
	"os"
	"strings"
)

// ReadSecretFiles loads the files the configuration refers to: the PSK file
// into IPsec.Auth.PSK, and checks that certificate, key and CA files are
// readable. readFile is os.ReadFile outside tests.
func (c *Config) ReadSecretFiles(readFile func(string) ([]byte, error)) error {
	if readFile == nil {
		readFile = os.ReadFile
	}
	if !c.IPsec.Enabled {
		return nil
	}
	var errs []error
	a := &c.IPsec.Auth
	if a.PSKFile != "" {
		b, err := readFile(a.PSKFile)
		switch {
		case err != nil:
			errs = append(errs, fieldErr("ipsec.auth.psk_file", "%v", err))
		case strings.TrimSpace(string(b)) == "":
			errs = append(errs, fieldErr("ipsec.auth.psk_file", "%s is empty", a.PSKFile))
		default:
			a.PSK = NewSecret(strings.TrimSpace(string(b)))
		}
	}
	for _, f := range []struct{ name, path string }{{"cert", a.Cert}, {"key", a.Key}, {"ca", a.CA}} {
		if f.path == "" {
			continue
		}
		if _, err := readFile(f.path); err != nil {
			errs = append(errs, fieldErr("ipsec.auth."+f.name, "%v", err))
		}
	}
	return errors.Join(errs...)
}
