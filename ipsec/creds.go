package ipsec

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
)

// credentials is the material read from the files named in Auth.
type credentials struct {
	cert, key, ca []byte // file contents as read (PEM or DER)
	keyType       string // load-key type: rsa, ecdsa or ed25519
}

// readCredentials reads and checks the X.509 files. The key's bytes are
// never logged; errors name the file, not its content.
func readCredentials(a Auth) (*credentials, error) {
	if a.Method != AuthX509 {
		return nil, nil
	}
	var c credentials
	var err error
	if c.cert, err = os.ReadFile(a.CertFile); err != nil {
		return nil, fmt.Errorf("ipsec: certificate: %w", err)
	}
	if c.key, err = os.ReadFile(a.KeyFile); err != nil {
		return nil, fmt.Errorf("ipsec: private key: %w", err)
	}
	if c.ca, err = os.ReadFile(a.CAFile); err != nil {
		return nil, fmt.Errorf("ipsec: CA certificate: %w", err)
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{{a.CertFile, c.cert}, {a.CAFile, c.ca}} {
		if _, err := x509.ParseCertificate(derOf(f.b)); err != nil {
			return nil, fmt.Errorf("%w: %s is not an X.509 certificate: %v", ErrInvalidConfig, f.name, err)
		}
	}
	if c.keyType, err = privateKeyType(derOf(c.key)); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidConfig, a.KeyFile, err)
	}
	return &c, nil
}

// derOf returns the DER content of the first PEM block, or b itself.
func derOf(b []byte) []byte {
	if blk, _ := pem.Decode(b); blk != nil {
		return blk.Bytes
	}
	return b
}

func privateKeyType(der []byte) (string, error) {
	if _, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return "rsa", nil
	}
	if _, err := x509.ParseECPrivateKey(der); err == nil {
		return "ecdsa", nil
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return "", fmt.Errorf("unsupported private key encoding")
	}
	switch k.(type) {
	case *rsa.PrivateKey:
		return "rsa", nil
	case *ecdsa.PrivateKey:
		return "ecdsa", nil
	case ed25519.PrivateKey:
		return "ed25519", nil
	}
	return "", fmt.Errorf("unsupported private key type %T", k)
}
