package controller

import (
	"time"

	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/controller/config"
	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/nhrp"
)

// ignoresIndication reports whether the received NHRP packet b is a
// Traffic Indication this node must not act on: a spoke configured with
// nhrp.shortcut false builds no shortcuts (its traffic stays on the hub
// path), so it drops redirects before the engine resolves anything.
func ignoresIndication(cfg *config.Config, b []byte) bool {
	if cfg.NHRP.Role != config.RoleSpoke || cfg.NHRP.Shortcut {
		return false
	}
	t, ok := nhrp.PeekType(b)
	return ok && t == nhrp.TypeTrafficIndication
}

// onHairpin hands a hairpinned packet to the engine (which sends the
// traffic indication, or not: rate limit, no route). At debug level it
// logs where the time went from the packet to the indication: kernel
// timestamp -> off the NFLOG socket (when the kernel stamped it),
// -> on the loop, -> engine done. Loop only.
func (c *Controller) onHairpin(h kernel.Hairpin) {
	if !c.config().NHRP.Redirect {
		return
	}
	start := time.Now()
	c.eng.Hairpin(h.Packet)
	if ce := c.log.Check(zap.DebugLevel, "hairpin handled"); ce != nil {
		fields := []zap.Field{zap.Duration("to_loop", start.Sub(h.Read)), zap.Duration("engine", time.Since(start))}
		if !h.Stamp.IsZero() {
			fields = append(fields, zap.Duration("kernel_to_read", h.Read.Sub(h.Stamp)))
		}
		ce.Write(fields...)
	}
}
