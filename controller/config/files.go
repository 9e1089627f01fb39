package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"strings"

	"github.com/dmvpnd/dmvpnd/ipsec"
)

// ReadSecretFiles loads the files the configuration refers to: the PSK file
// into IPsec.Auth.PSK, and checks that certificate, key and CA files are
// readable, keeping their digests in c.Files. readFile is os.ReadFile outside tests.
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
		case vaulted(string(b)):
			errs = append(errs, fieldErr("ipsec.auth.psk_file", "%s holds Ansible Vault ciphertext, not the key (decrypt it when templating)", a.PSKFile))
		default:
			a.PSK = ipsec.NewSecret(strings.TrimSpace(string(b)))
		}
	}
	for _, f := range []struct {
		name, path string
		digest     *string
	}{{"cert", a.Cert, &c.Files.Cert}, {"key", a.Key, &c.Files.Key}, {"ca", a.CA, &c.Files.CA}} {
		if f.path == "" {
			continue
		}
		b, err := readFile(f.path)
		if err != nil {
			errs = append(errs, fieldErr("ipsec.auth."+f.name, "%v", err))
			continue
		}
		sum := sha256.Sum256(b)
		*f.digest = hex.EncodeToString(sum[:])
	}
	return errors.Join(errs...)
}

// vaulted reports whether a secret is Ansible Vault ciphertext that was
// copied instead of decrypted: used as a key, it would "work" with every
// node that made the same mistake and with no other.
func vaulted(secret string) bool {
	return strings.HasPrefix(strings.TrimSpace(secret), "$ANSIBLE_VAULT;")
}
