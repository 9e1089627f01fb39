package kernel

import (
	"context"
	"os"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/dmvpnd/dmvpnd/nhrp/backoff"
)

// neighSubscribeFunc subscribes to neighbour events (Kernel.neighSubscribe);
// tests replace it.
type neighSubscribeFunc func(ch chan<- netlink.NeighUpdate, done <-chan struct{}, opts netlink.NeighSubscribeOptions) error

const (
	defaultMissRcvBuf = 1 << 20
	missChanLen       = 1024
	resubscribeMin    = 10 * time.Millisecond
	resubscribeMax    = 5 * time.Second
	missUpdateChanLen = 1024
)

// WatchMisses implements MissWatcher. It subscribes to neighbor events and
// reports, for the tunnel of the last EnsureTunnel, every RTM_GETNEIGH and
// every entry seen in state INCOMPLETE or PROBE. When the subscription fails
// (for example ENOBUFS after a burst overflowed the socket) it resubscribes
// with a dump of existing entries, so misses pending at that moment are
// reported again. The same address may therefore be reported more than once.
func (k *Kernel) WatchMisses(ctx context.Context) (<-chan Miss, error) {
	if _, err := k.currentTunnel(); err != nil {
		return nil, err
	}
	out := make(chan Miss, missChanLen)
	// Subscribe once synchronously so that setup errors reach the caller.
	sub, err := k.subscribeNeigh()
	if err != nil {
		return nil, err
	}
	go k.watchMisses(ctx, out, sub)
	return out, nil
}

type neighSub struct {
	updates chan netlink.NeighUpdate
	done    chan struct{}
}

func (s neighSub) stop() {
	close(s.done)
	for range s.updates { // drain so the library goroutine exits
	}
}

func (k *Kernel) subscribeNeigh() (neighSub, error) {
	s := neighSub{
		updates: make(chan netlink.NeighUpdate, missUpdateChanLen),
		done:    make(chan struct{}),
	}
	opts := netlink.NeighSubscribeOptions{
		ListExisting:      true,
		ReceiveBufferSize: k.cfg.MissRcvBuf,
		// Beyond net.core.rmem_max needs CAP_NET_ADMIN (SO_RCVBUFFORCE).
		ReceiveBufferForceSize: os.Geteuid() == 0,
		ErrorCallback: func(err error) {
			k.log.Warn("kernel: neighbor subscription error", zap.Error(err))
		},
	}
	if k.cfg.NetNS > 0 {
		h := netns.NsHandle(k.cfg.NetNS)
		opts.Namespace = &h
	}
	subscribe := k.subscribe
	if subscribe == nil {
		subscribe = k.neighSubscribe
	}
	if err := subscribe(s.updates, s.done, opts); err != nil {
		return neighSub{}, opErr("subscribe", "neighbor events", err)
	}
	return s, nil
}

func (k *Kernel) watchMisses(ctx context.Context, out chan<- Miss, sub neighSub) {
	defer close(out)
	defer k.nchanges.watch(false)
	retry := backoff.New(resubscribeMin, resubscribeMax)
	for {
		started := time.Now()
		k.nchanges.watch(true)
		if !k.forwardMisses(ctx, out, sub) {
			sub.stop()
			return
		}
		k.nchanges.watch(false)
		// The library closed the channel: the socket failed (ENOBUFS after
		// an overflow, typically). Resubscribe with a dump of existing
		// entries; back off while subscriptions keep failing quickly.
		close(sub.done)
		k.resubscribes.Add(1)
		if time.Since(started) > resubscribeMax {
			retry.Reset()
		}
		for {
			t := time.NewTimer(retry.Next())
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			var err error
			if sub, err = k.subscribeNeigh(); err == nil {
				break
			}
			k.log.Warn("kernel: resubscribe to neighbor events", zap.Error(err), zap.Duration("retry_in", retry.Peek()))
		}
	}
}

// forwardMisses relays misses until the subscription closes (returns true)
// or ctx is done (returns false).
func (k *Kernel) forwardMisses(ctx context.Context, out chan<- Miss, sub neighSub) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case u, ok := <-sub.updates:
			if !ok {
				return true
			}
			if t, err := k.currentTunnel(); err == nil {
				k.nchanges.note(u, t.ifindex)
			}
			m, ok := k.missFromUpdate(u)
			if !ok {
				continue
			}
			select {
			case out <- m:
			case <-ctx.Done():
				return false
			}
		}
	}
}

func (k *Kernel) missFromUpdate(u netlink.NeighUpdate) (Miss, bool) {
	if u.Type != unix.RTM_GETNEIGH && u.Type != unix.RTM_NEWNEIGH {
		return Miss{}, false
	}
	t, err := k.currentTunnel()
	if err != nil || u.Neigh.LinkIndex != t.ifindex {
		return Miss{}, false
	}
	st := NeighState(u.Neigh.State)
	if !isMissState(st) {
		return Miss{}, false
	}
	a := addrFromIP(u.Neigh.IP)
	if !a.Is4() {
		return Miss{}, false
	}
	return Miss{Addr: a, State: st}, true
}
