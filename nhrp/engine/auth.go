package engine

import (
	"crypto/subtle"

	"github.com/dmvpnd/dmvpnd/nhrp"
)

// authOK checks the Authentication extension against the configured
// password. Error Indications carry no extensions and are exempt; they can
// only fail a request we sent.
func (e *Engine) authOK(p *nhrp.Packet) bool {
	if len(e.cfg.AuthPassword) == 0 || p.Type == nhrp.TypeErrorIndication {
		return true
	}
	pw, ok := p.Extension(nhrp.ExtensionAuthentication).CleartextPassword()
	return ok && subtle.ConstantTimeCompare(pw, e.cfg.AuthPassword) == 1
}
