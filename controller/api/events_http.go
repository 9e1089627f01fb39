package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"

	"go.uber.org/zap"
)

// serveEvents streams events as JSON lines (one Event per line) until the
// client goes away. ?peer=ADDR keeps only the events about that peer. An
// events-lost line reports what a slow reader missed.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	src, ok := s.p.(EventSource)
	if !ok {
		s.writeError(w, r, http.StatusNotFound, fmt.Errorf("events: %w", ErrNotEnabled))
		return
	}
	var peer netip.Addr
	if p := r.URL.Query().Get("peer"); p != "" {
		a, err := netip.ParseAddr(p)
		if err != nil {
			s.writeError(w, r, http.StatusBadRequest, fmt.Errorf("peer: %w", err))
			return
		}
		peer = a
	}
	sub := src.Subscribe()
	defer sub.Close()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	if fl != nil {
		fl.Flush()
	}
	enc := json.NewEncoder(w)
	write := func(ev Event) bool {
		if n := sub.TakeLost(); n > 0 {
			if err := enc.Encode(Event{Time: ev.Time, Kind: EventLost, Level: "warn", Count: n}); err != nil {
				return false
			}
		}
		if peer.IsValid() && !ev.Concerns(peer) {
			return true
		}
		if err := enc.Encode(ev); err != nil {
			s.log.Debug("api: events stream ended", zap.Error(err))
			return false
		}
		if fl != nil {
			fl.Flush()
		}
		return true
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.closing:
			// The daemon stops: hand over what is buffered, then end.
			for {
				select {
				case ev := <-sub.C():
					if !write(ev) {
						return
					}
				default:
					return
				}
			}
		case ev := <-sub.C():
			if !write(ev) {
				return
			}
		}
	}
}

func (s *Server) recentEvents(w http.ResponseWriter, r *http.Request) {
	src, ok := s.p.(EventSource)
	if !ok {
		s.writeError(w, r, http.StatusNotFound, fmt.Errorf("events: %w", ErrNotEnabled))
		return
	}
	evs := src.RecentEvents()
	if evs == nil {
		evs = []Event{}
	}
	s.reply(w, r, evs, nil)
}

// RecentEvents returns the daemon's last events, oldest first.
func (c *Client) RecentEvents(ctx context.Context) ([]Event, error) {
	return get[[]Event](ctx, c, "/v1/events/recent")
}

// Events streams the daemon's events to fn until ctx ends, fn fails or the
// daemon closes the stream. A valid peer keeps only its events. opened, if
// not nil, is called once the daemon has accepted the subscription: every
// event published from then on reaches fn (or is reported lost).
func (c *Client) Events(ctx context.Context, peer netip.Addr, opened func(), fn func(Event) error) error {
	path := "/v1/events"
	if peer.IsValid() {
		path += "?peer=" + url.QueryEscape(peer.String())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://dmvpnd"+path, nil)
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("api: GET %s via %s: %w (is dmvpnd running?)", path, c.socket, unwrapURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var eb errorBody
		if json.NewDecoder(resp.Body).Decode(&eb) != nil || eb.Error == "" {
			eb.Error = "GET " + path + ": " + resp.Status
		}
		return &Error{Status: resp.StatusCode, Message: eb.Error}
	}
	if opened != nil {
		opened()
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var ev Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("api: decode event: %w", err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("api: events: %w", err)
	}
	return nil
}
