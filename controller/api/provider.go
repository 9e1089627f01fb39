package api

import (
	"context"
	"errors"
	"net/netip"
)

// ErrNotEnabled is returned by a Source for a view whose subsystem is off
// (e.g. BGP disabled); the server answers 404 with the message.
var ErrNotEnabled = errors.New("not enabled")

// ErrNotFound is returned for a peer or registration that does not exist;
// the server answers 404 with the message.
var ErrNotFound = errors.New("not found")

// Source produces the status snapshots and performs the clear actions. The
// controller implements it. Methods are called concurrently and must return
// copies the caller may keep.
type Source interface {
	Status(ctx context.Context) (Status, error)
	DMVPN(ctx context.Context) (DMVPN, error)
	Cache(ctx context.Context) ([]CacheEntry, error)
	NHS(ctx context.Context) ([]NHS, error)
	Shortcuts(ctx context.Context) ([]Shortcut, error)
	IPsec(ctx context.Context) ([]SA, error)
	BGP(ctx context.Context) (BGPSummary, error)
	Counters(ctx context.Context) (Counters, error)
	// ClearCache drops the dynamic NHRP cache and returns how many
	// entries went.
	ClearCache(ctx context.Context) (int, error)
	// ClearShortcuts removes the shortcut routes.
	ClearShortcuts(ctx context.Context) (int, error)
	// PeerDetails describes the peers whose tunnel or NBMA address is
	// addr (every peer for the zero address); none is ErrNotFound.
	PeerDetails(ctx context.Context, addr netip.Addr) ([]PeerDetail, error)
	// ClearPeer drops what this node holds for the peers at addr (tunnel
	// or NBMA): a registration, a resolved entry with its shortcuts, and
	// with them the IPsec peer. None is ErrNotFound.
	ClearPeer(ctx context.Context, addr netip.Addr) (PeerClear, error)
	// ClearRegistration drops the registration of the client at addr
	// (tunnel or NBMA) on a hub; none is ErrNotFound.
	ClearRegistration(ctx context.Context, addr netip.Addr) (int, error)
	// QoS lists the per-tunnel QoS shapers with their counters, only the
	// one toward the peer whose tunnel or NBMA address is addr when addr
	// is valid (none is ErrNotFound); ErrNotEnabled without QoS support.
	QoS(ctx context.Context, addr netip.Addr) ([]QoSPeer, error)
}

// Provider is what the Server serves: a Source plus Reload, which re-reads
// the configuration file and applies what it can (an invalid file is
// rejected with an error and the running configuration stays), and the
// running configuration.
type Provider interface {
	Source
	Reload(ctx context.Context, req ReloadRequest) (ReloadResult, error)
	RunningConfig(ctx context.Context) (RunningConfig, error)
}
