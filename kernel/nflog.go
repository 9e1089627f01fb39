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

// nflogConfig is one NFLOG group subscription. The hairpin trigger and the
// multicast capture each bind their own group through listenNFLOG.
type nflogConfig struct {
	netns   int
	group   uint16
	copyLen uint32 // bytes of each packet copied to userspace
	chanLen int
}

// listenNFLOG binds to an NFLOG group (queue threshold 1: each packet is
// delivered at once) and converts every logged packet with conv. Packets
// conv refuses, and packets the consumer is too slow for, are counted in
// dropped. The channel is closed after ctx ends.
func listenNFLOG[T any](ctx context.Context, cfg nflogConfig, log *zap.Logger, dropped *atomic.Int64,
	conv func(nflog.Attribute) (T, bool)) (<-chan T, error) {
	nf, err := nflog.Open(&nflog.Config{
		NetNS:    cfg.netns,
		Group:    cfg.group,
		Copymode: nflog.CopyPacket,
		Bufsize:  cfg.copyLen,
		QThresh:  1,
	})
	if err != nil {
		return nil, opErr("open NFLOG", fmt.Sprintf("group %d", cfg.group), err)
	}
	out := make(chan T, cfg.chanLen)
	var (
		mu     sync.Mutex
		closed bool
	)
	hook := func(a nflog.Attribute) int {
		v, ok := conv(a)
		if !ok {
			dropped.Add(1)
			return 0
		}
		mu.Lock()
		defer mu.Unlock()
		if closed {
			return 1
		}
		select {
		case out <- v:
		default:
			dropped.Add(1)
		}
		return 0
	}
	errfn := func(err error) int {
		if ctx.Err() != nil {
			return 1
		}
		// ENOBUFS and the like: messages were lost, keep receiving.
		log.Warn("kernel: NFLOG receive error", zap.Uint16("group", cfg.group), zap.Error(err))
		return 0
	}
	if err := nf.RegisterWithErrorFunc(ctx, hook, errfn); err != nil {
		_ = nf.Close()
		return nil, opErr("bind NFLOG", fmt.Sprintf("group %d", cfg.group), err)
	}
	go func() {
		<-ctx.Done()
		if err := nf.Close(); err != nil && !errors.Is(err, context.Canceled) {
			log.Debug("kernel: close NFLOG", zap.Error(err))
		}
		mu.Lock()
		closed = true
		close(out)
		mu.Unlock()
	}()
	return out, nil
}

// nftConn opens an nftables connection in the namespace netns (0: current).
func nftConn(netns int) (*nftables.Conn, error) {
	var opts []nftables.ConnOption
	if netns > 0 {
		opts = append(opts, nftables.WithNetNSFd(netns))
	}
	return nftables.New(opts...)
}

// nftBatch queues objects on an nftables connection in netns and sends them
// as one netlink batch (one transaction); errors name op and object.
func nftBatch(netns int, op, object string, queue func(cc *nftables.Conn) error) error {
	cc, err := nftConn(netns)
	if err != nil {
		return opErr(op, object, err)
	}
	if err := queue(cc); err != nil {
		return opErr(op, object, err)
	}
	return opErr(op, object, cc.Flush())
}
