package vicitest

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/pem"
	"slices"
	"strings"
)

// credStore is the fake charon's credential store, as far as VICI shows
// it: shared keys by id, private keys by the id load-key returns, and
// certificates. swanctl --load-all unloads shared and private keys that
// are not in its swanctl.conf (get-shared/get-keys, then unload-*);
// clear-creds drops everything.
type credStore struct {
	shared []string   // ids of shared keys loaded with an id
	keys   []string   // private key ids
	certs  []*Message // list-cert messages: type, flag, data
}

func (c *credStore) handle(cmd string, req *Message) ([]*Message, *Message) {
	switch cmd {
	case "load-shared":
		if req.String("data") == "" {
			return nil, Failure("missing shared key data")
		}
		if id := req.String("id"); id != "" && !slices.Contains(c.shared, id) {
			c.shared = append(c.shared, id)
		}
		return nil, Success()
	case "unload-shared":
		return nil, remove(&c.shared, req.String("id"), "shared key")
	case "get-shared":
		return nil, NewMessage().Set("keys", slices.Clone(c.shared))
	case "load-key":
		data := req.String("data")
		if data == "" {
			return nil, Failure("missing key data")
		}
		// charon's id is the SHA-1 of the public key; any stable digest
		// of the key does for a fake.
		sum := sha1.Sum([]byte(data))
		id := hex.EncodeToString(sum[:])
		if !slices.Contains(c.keys, id) {
			c.keys = append(c.keys, id)
		}
		return nil, Success().Set("id", id)
	case "unload-key":
		return nil, remove(&c.keys, req.String("id"), "private key")
	case "get-keys":
		return nil, NewMessage().Set("keys", slices.Clone(c.keys))
	case "load-cert":
		flag := strings.ToUpper(req.String("flag"))
		if flag == "" {
			flag = "NONE"
		}
		data := derOf(req.String("data"))
		for _, m := range c.certs {
			if m.String("flag") == flag && m.String("data") == data {
				return nil, Success()
			}
		}
		c.certs = append(c.certs, NewMessage().Set("type", req.String("type")).Set("flag", flag).
			Set("has_privkey", "no").Set("data", data))
		return nil, Success()
	case "list-certs":
		return slices.Clone(c.certs), NewMessage()
	case "clear-creds":
		*c = credStore{}
		return nil, Success()
	}
	return nil, Failure("unknown credential command " + cmd)
}

func remove(ids *[]string, id, what string) *Message {
	i := slices.Index(*ids, id)
	if i < 0 {
		return Failure(what + " '" + id + "' not found")
	}
	*ids = slices.Delete(*ids, i, i+1)
	return Success()
}

// Shared returns the ids of the loaded shared keys.
func (s *Server) Shared() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.creds.shared)
}

// derOf returns the DER content of the first PEM block, or s itself:
// list-certs reports certificates DER encoded whatever was loaded.
func derOf(s string) string {
	if b, _ := pem.Decode([]byte(s)); b != nil {
		return string(b.Bytes)
	}
	return s
}
