package engine

import (
	"crypto/subtle"

	"github.com/dmvpnd/dmvpnd/nhrp"
)

// authOK checks the Authentication extension against the configured
// password, on every packet type: an unauthenticated Error Indication
// could fail our requests and registrations as surely as a forged reply
// could answer them.
func (e *Engine) authOK(p *nhrp.Packet) bool {
	if len(e.cfg.AuthPassword) == 0 {
		return true
	}
	pw, ok := p.Extension(nhrp.ExtensionAuthentication).CleartextPassword()
	return ok && subtle.ConstantTimeCompare(pw, e.cfg.AuthPassword) == 1
}
