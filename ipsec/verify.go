package ipsec

import (
	"context"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/strongswan/govici/vici"
	"go.uber.org/zap"
)

// Self-healing. charon's configuration can change behind dmvpnd's back:
// `swanctl --load-all` unloads every connection, shared key and private
// key that is not in swanctl.conf (dmvpnd's included; `--clear` also drops
// certificates), and anyone with the VICI socket may unload or replace a
// connection. The Manager only learns of it by asking, so after every
// (re)connection and then every Config.VerifyInterval it lists what charon
// holds and reloads what is missing or different. Every repair is counted
// (State.RepairedConns, State.RepairedCreds) and logged at warning.

// Kinds of repair, for the log.
const (
	repairMissing   = "missing"
	repairDifferent = "different"
)

// verify compares charon's connections and credentials with what the
// Manager loaded and repairs the differences: a connection is forgotten
// from m.loaded, so the reconcile that follows loads it again; missing
// credentials are loaded again here.
func (m *Manager) verify(ctx context.Context) error {
	m.nextVerify = time.Now().Add(m.cfg.VerifyInterval)
	if err := m.verifyConns(ctx); err != nil {
		return err
	}
	return m.verifyCreds(ctx)
}

func (m *Manager) verifyConns(ctx context.Context) error {
	events, err := m.stream(ctx, cmdListConns, evListConn)
	if err != nil {
		return err
	}
	listed := map[string]string{}
	for _, ev := range events {
		for _, name := range ev.Keys() {
			if s := section(ev, name); s != nil && ownConn(name) {
				listed[name] = listedFingerprint(s)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(m.loaded)) {
		got, ok := listed[name]
		kind := repairMissing
		if ok {
			want := m.loadedPrint[name]
			if got == want {
				continue
			}
			kind = repairDifferent
			m.log.Debug("connection differs", zap.String("conn", name), zap.String("want", want), zap.String("charon", got))
		}
		m.log.Warn("charon lost a connection dmvpnd loaded, reloading it", zap.String("conn", name), zap.String("problem", kind))
		delete(m.loaded, name)
		m.countRepair(&m.repairedConns)
	}
	return nil
}

// verifyCreds checks the group PSK (get-shared lists it by its id), or the
// private key (get-keys, by the id load-key returned) and the certificate
// and CA (list-certs, by content), and loads them all again if one is
// missing. The shared key's value cannot be read back: a key replaced
// under the same id goes unnoticed.
func (m *Manager) verifyCreds(ctx context.Context) error {
	var missing []string
	switch m.cfg.Auth.Method {
	case AuthPSK:
		resp, err := m.call(ctx, cmdGetShared, nil)
		if err != nil {
			return err
		}
		if !slices.Contains(list(resp, "keys"), pskID) {
			missing = append(missing, "pre-shared key")
		}
	case AuthX509:
		if m.keyID != "" {
			resp, err := m.call(ctx, cmdGetKeys, nil)
			if err != nil {
				return err
			}
			if !slices.Contains(list(resp, "keys"), m.keyID) {
				missing = append(missing, "private key")
			}
		}
		certs, err := m.stream(ctx, cmdListCerts, evListCert)
		if err != nil {
			return err
		}
		have := map[string]bool{}
		for _, c := range certs {
			have[str(c, "flag")+" "+hex.EncodeToString([]byte(str(c, "data")))] = true
		}
		if !have["CA "+hex.EncodeToString(derOf(m.creds.ca))] {
			missing = append(missing, "CA certificate")
		}
		if !have["NONE "+hex.EncodeToString(derOf(m.creds.cert))] {
			missing = append(missing, "certificate")
		}
	}
	if len(missing) == 0 {
		return nil
	}
	m.log.Warn("charon lost credentials dmvpnd loaded, reloading them", zap.Strings("missing", missing))
	for range missing {
		m.countRepair(&m.repairedCreds)
	}
	return m.loadCreds(ctx)
}

func (m *Manager) countRepair(n *uint64) {
	m.mu.Lock()
	*n++
	m.mu.Unlock()
}

// Fingerprints: the parts of a connection that both a load-conn request
// and charon's list-conn report carry in comparable form (addresses, IKE
// version, authentication classes, children with their mode and traffic
// selectors). Identities, proposals and timers are left out: charon
// rewrites them (distinguished names, keywords, defaults).

// authClasses maps the swanctl auth keyword to list-conn's class.
var authClasses = map[string]string{"psk": "pre-shared key", "pubkey": "public key"}

type fingerprint struct {
	local, remote []string
	version       string
	auth          []string // local class, remote class
	children      []string // name mode local-ts remote-ts
}

func (f fingerprint) String() string {
	return fmt.Sprintf("local=%v remote=%v version=%s auth=%v children=%v", f.local, f.remote, f.version, f.auth, f.children)
}

// normTS makes a traffic selector comparable: charon prints the protocol
// by name when it can resolve it, by number otherwise.
func normTS(ts []string) string {
	out := make([]string, len(ts))
	for i, s := range ts {
		out[i] = strings.ReplaceAll(s, "[47]", greSelector)
	}
	return strings.Join(out, ",")
}

// requestFingerprint is the fingerprint of one connection section of a
// load-conn request as render.go builds it.
func requestFingerprint(c *vici.Message) string {
	f := fingerprint{local: list(c, "local_addrs"), remote: list(c, "remote_addrs"), version: "IKEv" + str(c, "version")}
	for _, side := range []string{"local", "remote"} {
		f.auth = append(f.auth, authClasses[str(section(c, side), "auth")])
	}
	if ch := section(c, "children"); ch != nil {
		for _, name := range slices.Sorted(slices.Values(ch.Keys())) {
			s := section(ch, name)
			f.children = append(f.children, fmt.Sprintf("%s %s %s %s", name, strings.ToUpper(str(s, "mode")),
				normTS(list(s, "local_ts")), normTS(list(s, "remote_ts"))))
		}
	}
	return f.String()
}

// listedFingerprint is the fingerprint of one connection of a list-conn
// event (charon 5.9: local-1/remote-1 auth rounds, upper-case modes,
// local-ts/remote-ts).
func listedFingerprint(c *vici.Message) string {
	f := fingerprint{local: list(c, "local_addrs"), remote: list(c, "remote_addrs"), version: str(c, "version")}
	for _, side := range []string{"local-1", "remote-1"} {
		f.auth = append(f.auth, str(section(c, side), "class"))
	}
	if ch := section(c, "children"); ch != nil {
		for _, name := range slices.Sorted(slices.Values(ch.Keys())) {
			s := section(ch, name)
			if s == nil {
				continue
			}
			f.children = append(f.children, fmt.Sprintf("%s %s %s %s", name, str(s, "mode"),
				normTS(list(s, "local-ts")), normTS(list(s, "remote-ts"))))
		}
	}
	return f.String()
}

// stream runs a listing command bounded by CommandTimeout.
func (m *Manager) stream(ctx context.Context, cmd, event string) ([]*vici.Message, error) {
	cctx, cancel := m.cmdCtx(ctx)
	defer cancel()
	return m.link.stream(cctx, cmd, event)
}
