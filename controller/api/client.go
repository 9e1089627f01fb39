package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// DefaultSocket is where dmvpnd listens unless configured otherwise.
const DefaultSocket = "/run/dmvpnd/dmvpnd.sock"

// Error is a non-2xx reply from the server.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Message is the server's explanation.
	Message string
}

func (e *Error) Error() string { return "api: " + e.Message }

// Client talks to a dmvpnd control socket. It implements Provider.
type Client struct {
	socket string
	hc     *http.Client
}

var _ Provider = (*Client)(nil)

// NewClient returns a client for the unix socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true,
	}
	return &Client{socket: path, hc: &http.Client{Transport: tr}}
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("api: encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://dmvpnd"+path, body)
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("api: %s %s via %s: %w (is dmvpnd running?)", method, path, c.socket, unwrapURL(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("api: read reply to %s: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		var eb errorBody
		if json.Unmarshal(data, &eb) != nil || eb.Error == "" {
			eb.Error = fmt.Sprintf("%s %s: %s", method, path, resp.Status)
		}
		return &Error{Status: resp.StatusCode, Message: eb.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("api: decode reply to %s: %w", path, err)
	}
	return nil
}

func unwrapURL(err error) error {
	if ue, ok := err.(interface{ Unwrap() error }); ok && ue.Unwrap() != nil {
		return ue.Unwrap()
	}
	return err
}

func get[T any](ctx context.Context, c *Client, path string) (T, error) {
	var v T
	err := c.do(ctx, http.MethodGet, path, nil, &v)
	return v, err
}

// Status returns the node's readiness.
func (c *Client) Status(ctx context.Context) (Status, error) {
	return get[Status](ctx, c, "/v1/status")
}

// DMVPN returns the "show dmvpn" view.
func (c *Client) DMVPN(ctx context.Context) (DMVPN, error) { return get[DMVPN](ctx, c, "/v1/dmvpn") }

// Cache returns the NHRP cache.
func (c *Client) Cache(ctx context.Context) ([]CacheEntry, error) {
	return get[[]CacheEntry](ctx, c, "/v1/nhrp/cache")
}

// NHS returns the next-hop servers.
func (c *Client) NHS(ctx context.Context) ([]NHS, error) { return get[[]NHS](ctx, c, "/v1/nhrp/nhs") }

// Shortcuts returns the installed shortcuts.
func (c *Client) Shortcuts(ctx context.Context) ([]Shortcut, error) {
	return get[[]Shortcut](ctx, c, "/v1/nhrp/shortcuts")
}

// IPsec returns the SAs.
func (c *Client) IPsec(ctx context.Context) ([]SA, error) { return get[[]SA](ctx, c, "/v1/ipsec") }

// BGP returns the BGP summary.
func (c *Client) BGP(ctx context.Context) (BGPSummary, error) {
	return get[BGPSummary](ctx, c, "/v1/bgp/summary")
}

// Counters returns the counters.
func (c *Client) Counters(ctx context.Context) (Counters, error) {
	return get[Counters](ctx, c, "/v1/counters")
}

// ClearCache clears the dynamic NHRP cache.
func (c *Client) ClearCache(ctx context.Context) (int, error) {
	var r ClearResult
	err := c.do(ctx, http.MethodPost, "/v1/nhrp/cache/clear", nil, &r)
	return r.Cleared, err
}

// ClearShortcuts removes all shortcuts.
func (c *Client) ClearShortcuts(ctx context.Context) (int, error) {
	var r ClearResult
	err := c.do(ctx, http.MethodPost, "/v1/nhrp/shortcuts/clear", nil, &r)
	return r.Cleared, err
}

// Reload asks the daemon to re-read its configuration file and apply it,
// or with req.DryRun only to list the changes (of req.Config if set).
func (c *Client) Reload(ctx context.Context, req ReloadRequest) (ReloadResult, error) {
	var r ReloadResult
	err := c.do(ctx, http.MethodPost, "/v1/reload", req, &r)
	return r, err
}

// RunningConfig returns the configuration in effect.
func (c *Client) RunningConfig(ctx context.Context) (RunningConfig, error) {
	return get[RunningConfig](ctx, c, "/v1/config")
}

// LogLevel returns the daemon's log level.
func (c *Client) LogLevel(ctx context.Context) (string, error) {
	l, err := get[LogLevel](ctx, c, "/v1/log-level")
	return l.Level, err
}

// SetLogLevel changes the daemon's log level and returns the new one.
func (c *Client) SetLogLevel(ctx context.Context, level string) (string, error) {
	var l LogLevel
	err := c.do(ctx, http.MethodPut, "/v1/log-level", LogLevel{Level: level}, &l)
	return l.Level, err
}

// WaitReady polls Status every interval until the node is ready, ctx ends
// (returning the last status and ctx's error, or the last connection error),
// or the server answers with an API error.
func (c *Client) WaitReady(ctx context.Context, interval time.Duration) (Status, error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var last Status
	var lastErr error
	for {
		st, err := c.Status(ctx)
		switch {
		case err == nil && st.Ready:
			return st, nil
		case err == nil:
			last, lastErr = st, nil
		case ctx.Err() != nil:
			// The deadline interrupted the request; report readiness below.
		default:
			if _, api := err.(*Error); api {
				return st, err
			}
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return last, lastErr
			}
			return last, fmt.Errorf("api: not ready (state %s: %s): %w", last.State, last.Reason, ctx.Err())
		case <-t.C:
		}
	}
}

// PeerDetails describes the peers at addr (tunnel or NBMA), every peer for
// the zero address.
func (c *Client) PeerDetails(ctx context.Context, addr netip.Addr) ([]PeerDetail, error) {
	if !addr.IsValid() {
		return get[[]PeerDetail](ctx, c, "/v1/dmvpn/peers")
	}
	return get[[]PeerDetail](ctx, c, "/v1/dmvpn/peers/"+addr.String())
}

// ClearPeer drops what the daemon holds for the peers at addr.
func (c *Client) ClearPeer(ctx context.Context, addr netip.Addr) (PeerClear, error) {
	var r PeerClear
	err := c.do(ctx, http.MethodPost, "/v1/dmvpn/peers/"+addr.String()+"/clear", nil, &r)
	return r, err
}

// ClearRegistration drops the registration of the client at addr.
func (c *Client) ClearRegistration(ctx context.Context, addr netip.Addr) (int, error) {
	var r ClearResult
	err := c.do(ctx, http.MethodPost, "/v1/nhrp/registrations/"+addr.String()+"/clear", nil, &r)
	return r.Cleared, err
}

// QoS lists the per-tunnel QoS shapers and their counters: the one toward
// addr (tunnel or NBMA), every one for the zero address.
func (c *Client) QoS(ctx context.Context, addr netip.Addr) ([]QoSPeer, error) {
	if !addr.IsValid() {
		return get[[]QoSPeer](ctx, c, "/v1/qos")
	}
	return get[[]QoSPeer](ctx, c, "/v1/qos/"+addr.String())
}
