package ipsec

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"go.uber.org/zap"
)

// credUpdate is a SetCredentials call waiting for the Run goroutine.
type credUpdate struct {
	auth     Auth
	creds    *credentials
	ike, esp []string
}

// SetCredentials replaces the pre-shared key or the certificate, key and CA
// files, and the proposals (empty: the charon-aware defaults), for instance
// after a configuration reload. The files are read and checked now, so a
// bad file is refused here and nothing changes; the authentication method
// cannot change. The Run goroutine then loads the credentials into charon
// and reloads the connections whose rendering changed: new SAs use the new
// material, established SAs keep working until they rekey.
func (m *Manager) SetCredentials(auth Auth, ike, esp []string) error {
	if auth.Method != m.method {
		return fmt.Errorf("%w: the authentication method cannot change at run time (%v to %v)", ErrInvalidConfig, m.method, auth.Method)
	}
	// Only fields no other goroutine writes: m.cfg belongs to Run.
	c := Config{LocalNBMA: m.local, Auth: auth, IKEProposals: slices.Clone(ike), ESPProposals: slices.Clone(esp)}
	if err := c.validate(); err != nil {
		return err
	}
	creds, err := readCredentials(auth)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.update = &credUpdate{auth: auth, creds: creds, ike: c.IKEProposals, esp: c.ESPProposals}
	m.mu.Unlock()
	m.wake()
	return nil
}

// takeUpdate moves a pending SetCredentials into the configuration (Run
// goroutine). It reports whether there was one.
func (m *Manager) takeUpdate() bool {
	m.mu.Lock()
	u := m.update
	m.update = nil
	m.mu.Unlock()
	if u == nil {
		return false
	}
	m.cfg.Auth, m.creds = u.auth, u.creds
	m.cfg.IKEProposals, m.cfg.ESPProposals = u.ike, u.esp
	return true
}

// applyUpdate loads pending credentials into the connected charon. The
// group PSK is replaced in place (same load-shared id); a new certificate
// and key are loaded beside the old ones, and the connections, which carry
// the certificates and proposals, are reloaded by the next reconcile
// because their rendering changed. Existing SAs are not touched.
func (m *Manager) applyUpdate(ctx context.Context) error {
	if !m.takeUpdate() {
		return nil
	}
	m.props = m.chooseProposals(m.algs)
	if err := m.loadCreds(ctx); err != nil {
		if errors.Is(err, ErrConnection) {
			return err
		}
		m.log.Error("loading new credentials", zap.Error(err))
		return nil
	}
	m.log.Info("credentials and proposals replaced for new SAs", zap.Stringer("auth", m.cfg.Auth.Method),
		zap.Strings("ike_proposals", m.props.ike), zap.Strings("esp_proposals", m.props.esp))
	return nil
}
