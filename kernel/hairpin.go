package kernel

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/google/nftables"
	"go.uber.org/zap"
)

// HairpinTrigger is the hub's redirect trigger as the controller sees it.
type HairpinTrigger interface {
	HairpinSource
	// Install replaces the trigger table atomically for the tunnel ifindex.
	Install(ifindex int) error
	// Remove deletes the trigger table; a missing table is not an error.
	Remove() error
}

// HairpinTrap implements HairpinTrigger with nftables and NFLOG.
type HairpinTrap struct {
	cfg HairpinConfig
	log *zap.Logger

	dropped atomic.Int64
}

var _ HairpinTrigger = (*HairpinTrap)(nil)

// NewHairpinTrap validates cfg (after defaults) and returns the trap.
func NewHairpinTrap(cfg HairpinConfig, log *zap.Logger) (*HairpinTrap, error) {
	cfg = cfg.withDefaults()
	if _, err := limitUnit(cfg.Per); err != nil {
		return nil, fmt.Errorf("kernel: hairpin trigger: %w", err)
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &HairpinTrap{cfg: cfg, log: log}, nil
}

func (h *HairpinTrap) object() string {
	return fmt.Sprintf("table ip %s", h.cfg.Table)
}

// Install implements HairpinTrigger: one netlink batch deletes any previous
// table of ours and creates the new one.
func (h *HairpinTrap) Install(ifindex int) error {
	return nftBatch(h.cfg.NetNS, "install hairpin trigger", h.object(), func(cc *nftables.Conn) error {
		return queueHairpinInstall(cc, h.cfg, ifindex)
	})
}

// Remove implements HairpinTrigger.
func (h *HairpinTrap) Remove() error {
	return nftBatch(h.cfg.NetNS, "remove hairpin trigger", h.object(), func(cc *nftables.Conn) error {
		queueHairpinRemove(cc, h.cfg)
		return nil
	})
}

// Dropped counts notifications dropped because the consumer was too slow.
func (h *HairpinTrap) Dropped() int64 { return h.dropped.Load() }

const hairpinChanLen = 1024

// Hairpins implements HairpinSource: it binds to the NFLOG group with a queue
// threshold of 1 and copies up to Snaplen bytes of each packet.
func (h *HairpinTrap) Hairpins(ctx context.Context) (<-chan Hairpin, error) {
	return listenNFLOG(ctx, nflogConfig{netns: h.cfg.NetNS, group: h.cfg.Group, copyLen: h.cfg.Snaplen, chanLen: hairpinChanLen},
		h.log, &h.dropped, hairpinFromAttr)
}

func hairpinFromAttr(a nflogPacket) (Hairpin, bool) {
	if a.inDev == 0 || a.payload == nil {
		return Hairpin{}, false
	}
	return Hairpin{InIfindex: int(a.inDev), Packet: append([]byte(nil), a.payload...), Read: time.Now(), Stamp: a.stamp}, true
}
