// Package apitest provides a fake api.Provider and a fixed snapshot fixture
// for tests of the control API, dmvpnctl and dmvpnd.
package apitest

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/controller/api"
)

// Snapshot is everything a Provider reports, as of Now.
type Snapshot struct {
	Now       time.Time        `json:"now"`
	Status    api.Status       `json:"status"`
	DMVPN     api.DMVPN        `json:"dmvpn"`
	Cache     []api.CacheEntry `json:"cache"`
	NHS       []api.NHS        `json:"nhs"`
	Shortcuts []api.Shortcut   `json:"shortcuts"`
	SAs       []api.SA         `json:"ipsec"`
	BGP       api.BGPSummary   `json:"bgp"`
	Counters  api.Counters     `json:"counters"`
	// Peers are the per-peer details (show dmvpn detail).
	Peers []api.PeerDetail `json:"peers"`
	// QoS are the per-tunnel QoS shapers (show qos); nil when the node
	// has no QoS support (the view is not enabled).
	QoS []api.QoSPeer `json:"qos"`
}

// Fake is an api.Provider serving a Snapshot. Err, when set, is returned by
// every view; ReloadErr by Reload. Safe for concurrent use.
type Fake struct {
	mu         sync.Mutex
	snap       Snapshot
	err        error
	reloadErr  error
	reload     api.ReloadResult
	lastReload api.ReloadRequest
	running    api.RunningConfig
	calls      map[string]int
	// Events is the event stream the Fake serves; tests Publish on it.
	Events *api.Broker
}

var (
	_ api.Provider    = (*Fake)(nil)
	_ api.EventSource = (*Fake)(nil)
)

// NewFake returns a Fake serving s.
func NewFake(s Snapshot) *Fake {
	return &Fake{snap: s, calls: map[string]int{}, Events: api.NewBroker(4, 100)}
}

// Subscribe implements api.EventSource.
func (f *Fake) Subscribe() *api.Subscription { return f.Events.Subscribe() }

// RecentEvents implements api.EventSource.
func (f *Fake) RecentEvents() []api.Event { return f.Events.RecentEvents() }

// Subscribers reports how many subscriptions are open (to wait for a
// stream to start).
func (f *Fake) Subscribers() int { return f.Events.Subscribers() }

// Set replaces the snapshot.
func (f *Fake) Set(s Snapshot) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.snap = s
}

// SetStatus replaces only the status.
func (f *Fake) SetStatus(s api.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.snap.Status = s
}

// SetErr makes every view fail with err (nil restores).
func (f *Fake) SetErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// SetReloadErr makes Reload fail with err (nil restores).
func (f *Fake) SetReloadErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reloadErr = err
}

// Calls reports how often method was called.
func (f *Fake) Calls(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

func view[T any](f *Fake, method string, get func(*Snapshot) T) (T, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[method]++
	if f.err != nil {
		var zero T
		return zero, f.err
	}
	return get(&f.snap), nil
}

// Status implements api.Source.
func (f *Fake) Status(context.Context) (api.Status, error) {
	return view(f, "Status", func(s *Snapshot) api.Status { return s.Status })
}

// DMVPN implements api.Source.
func (f *Fake) DMVPN(context.Context) (api.DMVPN, error) {
	return view(f, "DMVPN", func(s *Snapshot) api.DMVPN { return s.DMVPN })
}

// Cache implements api.Source.
func (f *Fake) Cache(context.Context) ([]api.CacheEntry, error) {
	return view(f, "Cache", func(s *Snapshot) []api.CacheEntry { return s.Cache })
}

// NHS implements api.Source.
func (f *Fake) NHS(context.Context) ([]api.NHS, error) {
	return view(f, "NHS", func(s *Snapshot) []api.NHS { return s.NHS })
}

// Shortcuts implements api.Source.
func (f *Fake) Shortcuts(context.Context) ([]api.Shortcut, error) {
	return view(f, "Shortcuts", func(s *Snapshot) []api.Shortcut { return s.Shortcuts })
}

// IPsec implements api.Source.
func (f *Fake) IPsec(context.Context) ([]api.SA, error) {
	return view(f, "IPsec", func(s *Snapshot) []api.SA { return s.SAs })
}

// BGP implements api.Source.
func (f *Fake) BGP(context.Context) (api.BGPSummary, error) {
	return view(f, "BGP", func(s *Snapshot) api.BGPSummary { return s.BGP })
}

// Counters implements api.Source.
func (f *Fake) Counters(context.Context) (api.Counters, error) {
	return view(f, "Counters", func(s *Snapshot) api.Counters { return s.Counters })
}

// ClearCache drops the non-static cache entries.
func (f *Fake) ClearCache(context.Context) (int, error) {
	return view(f, "ClearCache", func(s *Snapshot) int {
		kept := s.Cache[:0:0]
		for _, e := range s.Cache {
			if e.Type == api.CacheNHS || e.Type == api.CacheDynamic {
				kept = append(kept, e)
			}
		}
		n := len(s.Cache) - len(kept)
		s.Cache = kept
		return n
	})
}

// ClearShortcuts drops all shortcuts.
func (f *Fake) ClearShortcuts(context.Context) (int, error) {
	return view(f, "ClearShortcuts", func(s *Snapshot) int {
		n := len(s.Shortcuts)
		s.Shortcuts = nil
		return n
	})
}

// PeerDetails implements api.Source: the details whose tunnel, NBMA or
// observed NBMA address is addr, all for the zero address.
func (f *Fake) PeerDetails(_ context.Context, addr netip.Addr) ([]api.PeerDetail, error) {
	out, err := view(f, "PeerDetails", func(s *Snapshot) []api.PeerDetail { return matching(s.Peers, addr) })
	if err == nil && addr.IsValid() && len(out) == 0 {
		return nil, fmt.Errorf("no peer %s: %w", addr, api.ErrNotFound)
	}
	return out, err
}

func matching(peers []api.PeerDetail, addr netip.Addr) []api.PeerDetail {
	var out []api.PeerDetail
	for _, p := range peers {
		if !addr.IsValid() || p.Tunnel == addr || p.NBMA == addr || p.ObservedNBMA == addr {
			out = append(out, p)
		}
	}
	return out
}

// QoS implements api.Source: the shapers toward addr (tunnel or NBMA),
// all for the zero address; a snapshot without QoS is not enabled.
func (f *Fake) QoS(_ context.Context, addr netip.Addr) ([]api.QoSPeer, error) {
	out, err := view(f, "QoS", func(s *Snapshot) []api.QoSPeer {
		if s.QoS == nil {
			return nil
		}
		out := []api.QoSPeer{}
		for _, p := range s.QoS {
			if !addr.IsValid() || p.Tunnel == addr || p.NBMA == addr {
				out = append(out, p)
			}
		}
		return out
	})
	switch {
	case err != nil:
		return nil, err
	case out == nil:
		return nil, fmt.Errorf("per-tunnel QoS: %w", api.ErrNotEnabled)
	case addr.IsValid() && len(out) == 0:
		return nil, fmt.Errorf("no per-tunnel QoS toward %s: %w", addr, api.ErrNotFound)
	}
	return out, nil
}

// ClearPeer implements api.Source: it drops the matching details and
// reports one action per peer.
func (f *Fake) ClearPeer(_ context.Context, addr netip.Addr) (api.PeerClear, error) {
	res, err := view(f, "ClearPeer", func(s *Snapshot) api.PeerClear {
		var r api.PeerClear
		kept := s.Peers[:0:0]
		for _, p := range s.Peers {
			if len(matching([]api.PeerDetail{p}, addr)) == 0 {
				kept = append(kept, p)
				continue
			}
			r.Resolved++
			r.Actions = append(r.Actions, "cleared peer "+p.Tunnel.String())
		}
		s.Peers = kept
		return r
	})
	if err == nil && len(res.Actions) == 0 {
		return res, fmt.Errorf("no peer %s: %w", addr, api.ErrNotFound)
	}
	return res, err
}

// ClearRegistration implements api.Source: it drops the dynamic cache
// entry of the registration at addr.
func (f *Fake) ClearRegistration(_ context.Context, addr netip.Addr) (int, error) {
	n, err := view(f, "ClearRegistration", func(s *Snapshot) int {
		kept := s.Cache[:0:0]
		for _, e := range s.Cache {
			if e.Type != api.CacheDynamic || (e.Tunnel != addr && e.NBMA != addr) {
				kept = append(kept, e)
			}
		}
		n := len(s.Cache) - len(kept)
		s.Cache = kept
		return n
	})
	if err == nil && n == 0 {
		return 0, fmt.Errorf("no registration from %s: %w", addr, api.ErrNotFound)
	}
	return n, err
}

// Reload returns the configured reload error, else the configured result
// (marked DryRun as asked). The last request is kept (LastReload).
func (f *Fake) Reload(_ context.Context, req api.ReloadRequest) (api.ReloadResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["Reload"]++
	f.lastReload = req
	if f.reloadErr != nil {
		return api.ReloadResult{}, f.reloadErr
	}
	r := f.reload
	r.DryRun = req.DryRun
	return r, nil
}

// SetReloadResult sets what Reload returns.
func (f *Fake) SetReloadResult(r api.ReloadResult) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reload = r
}

// LastReload is the last Reload request.
func (f *Fake) LastReload() api.ReloadRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastReload
}

// RunningConfig returns the configured running configuration.
func (f *Fake) RunningConfig(context.Context) (api.RunningConfig, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["RunningConfig"]++
	return f.running, f.err
}

// SetRunningConfig sets what RunningConfig returns.
func (f *Fake) SetRunningConfig(r api.RunningConfig) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.running = r
}

// CmpOptions compare the netip values inside snapshots with go-cmp.
func CmpOptions() cmp.Options {
	return cmp.Options{
		cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
		cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
		cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
	}
}
