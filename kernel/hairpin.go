package kernel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/florianl/go-nflog/v2"
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

func (h *HairpinTrap) conn() (*nftables.Conn, error) {
	var opts []nftables.ConnOption
	if h.cfg.NetNS > 0 {
		opts = append(opts, nftables.WithNetNSFd(h.cfg.NetNS))
	}
	return nftables.New(opts...)
}

func (h *HairpinTrap) object() string {
	return fmt.Sprintf("table ip %s", h.cfg.Table)
}

// Install implements HairpinTrigger: one netlink batch deletes any previous
// table of ours and creates the new one.
func (h *HairpinTrap) Install(ifindex int) error {
	cc, err := h.conn()
	if err != nil {
		return opErr("install hairpin trigger", h.object(), err)
	}
	if err := queueHairpinInstall(cc, h.cfg, ifindex); err != nil {
		return opErr("install hairpin trigger", h.object(), err)
	}
	if err := cc.Flush(); err != nil {
		return opErr("install hairpin trigger", h.object(), err)
	}
	return nil
}

// Remove implements HairpinTrigger.
func (h *HairpinTrap) Remove() error {
	cc, err := h.conn()
	if err != nil {
		return opErr("remove hairpin trigger", h.object(), err)
	}
	queueHairpinRemove(cc, h.cfg)
	return opErr("remove hairpin trigger", h.object(), cc.Flush())
}

// Dropped counts notifications dropped because the consumer was too slow.
func (h *HairpinTrap) Dropped() int64 { return h.dropped.Load() }

const hairpinChanLen = 1024

// Hairpins implements HairpinSource: it binds to the NFLOG group with a queue
// threshold of 1 and copies up to Snaplen bytes of each packet.
func (h *HairpinTrap) Hairpins(ctx context.Context) (<-chan Hairpin, error) {
	nf, err := nflog.Open(&nflog.Config{
		NetNS:    h.cfg.NetNS,
		Group:    h.cfg.Group,
		Copymode: nflog.CopyPacket,
		Bufsize:  h.cfg.Snaplen,
		QThresh:  1,
	})
	if err != nil {
		return nil, opErr("open NFLOG", fmt.Sprintf("group %d", h.cfg.Group), err)
	}
	out := make(chan Hairpin, hairpinChanLen)
	var (
		mu     sync.Mutex
		closed bool
	)
	hook := func(a nflog.Attribute) int {
		hp, ok := hairpinFromAttr(a)
		if !ok {
			h.dropped.Add(1)
			return 0
		}
		mu.Lock()
		defer mu.Unlock()
		if closed {
			return 1
		}
		select {
		case out <- hp:
		default:
			h.dropped.Add(1)
		}
		return 0
	}
	errfn := func(err error) int {
		if ctx.Err() != nil {
			return 1
		}
		// ENOBUFS and the like: messages were lost, keep receiving.
		h.log.Warn("kernel: NFLOG receive error", zap.Error(err))
		return 0
	}
	if err := nf.RegisterWithErrorFunc(ctx, hook, errfn); err != nil {
		_ = nf.Close()
		return nil, opErr("bind NFLOG", fmt.Sprintf("group %d", h.cfg.Group), err)
	}
	go func() {
		<-ctx.Done()
		if err := nf.Close(); err != nil && !errors.Is(err, context.Canceled) {
			h.log.Debug("kernel: close NFLOG", zap.Error(err))
		}
		mu.Lock()
		closed = true
		close(out)
		mu.Unlock()
	}()
	return out, nil
}

func hairpinFromAttr(a nflog.Attribute) (Hairpin, bool) {
	if a.InDev == nil || a.Payload == nil {
		return Hairpin{}, false
	}
	p := make([]byte, len(*a.Payload))
	copy(p, *a.Payload)
	return Hairpin{InIfindex: int(*a.InDev), Packet: p}, true
}
