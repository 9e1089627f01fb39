package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Server serves a Provider over HTTP.
type Server struct {
	p     Provider
	level *zap.AtomicLevel
	log   *zap.Logger
	http  *http.Server
	// closing ends the event streams at Shutdown.
	closing   chan struct{}
	closeOnce sync.Once
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger (default zap.NewNop()).
func WithLogger(l *zap.Logger) Option { return func(s *Server) { s.log = l } }

// WithLevel exposes the daemon's log level on /v1/log-level.
func WithLevel(l zap.AtomicLevel) Option { return func(s *Server) { s.level = &l } }

// NewServer returns a Server for p.
func NewServer(p Provider, opts ...Option) *Server {
	s := &Server{p: p, log: zap.NewNop(), closing: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	s.http = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	return s
}

// Serve accepts connections on ln until Shutdown. It returns nil after a
// clean Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("api: serve: %w", err)
	}
	return nil
}

// Shutdown stops accepting and waits for running requests until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeOnce.Do(func() { close(s.closing) })
	if err := s.http.Shutdown(ctx); err != nil {
		return fmt.Errorf("api: shutdown: %w", err)
	}
	return nil
}

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	m := http.NewServeMux()
	get := func(path string, f func(context.Context) (any, error)) {
		m.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
			v, err := f(r.Context())
			s.reply(w, r, v, err)
		})
	}
	get("/v1/status", func(ctx context.Context) (any, error) { return s.p.Status(ctx) })
	get("/v1/dmvpn", func(ctx context.Context) (any, error) { return s.p.DMVPN(ctx) })
	get("/v1/nhrp/cache", func(ctx context.Context) (any, error) { return nonNil(s.p.Cache(ctx)) })
	get("/v1/nhrp/nhs", func(ctx context.Context) (any, error) { return nonNil(s.p.NHS(ctx)) })
	get("/v1/nhrp/shortcuts", func(ctx context.Context) (any, error) { return nonNil(s.p.Shortcuts(ctx)) })
	get("/v1/ipsec", func(ctx context.Context) (any, error) { return nonNil(s.p.IPsec(ctx)) })
	get("/v1/bgp/summary", func(ctx context.Context) (any, error) { return s.p.BGP(ctx) })
	get("/v1/counters", func(ctx context.Context) (any, error) { return s.p.Counters(ctx) })
	m.HandleFunc("POST /v1/nhrp/cache/clear", func(w http.ResponseWriter, r *http.Request) {
		n, err := s.p.ClearCache(r.Context())
		s.log.Info("nhrp cache cleared", zap.Int("entries", n), zap.Error(err))
		s.reply(w, r, ClearResult{Cleared: n}, err)
	})
	m.HandleFunc("POST /v1/nhrp/shortcuts/clear", func(w http.ResponseWriter, r *http.Request) {
		n, err := s.p.ClearShortcuts(r.Context())
		s.log.Info("nhrp shortcuts cleared", zap.Int("entries", n), zap.Error(err))
		s.reply(w, r, ClearResult{Cleared: n}, err)
	})
	s.peerRoutes(m)
	m.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) {
		var req ReloadRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
			s.writeError(w, r, http.StatusBadRequest, fmt.Errorf("bad request body: %w", err))
			return
		}
		if req.Config != "" && !req.DryRun {
			s.writeError(w, r, http.StatusBadRequest, errors.New("a configuration in the request is only checked (dry_run); a reload reads the daemon's file"))
			return
		}
		res, err := s.p.Reload(r.Context(), req)
		if err != nil {
			s.writeError(w, r, http.StatusUnprocessableEntity, err)
			return
		}
		if res.Changes == nil {
			res.Changes = []ConfigChange{}
		}
		s.reply(w, r, res, nil)
	})
	get("/v1/config", func(ctx context.Context) (any, error) { return s.p.RunningConfig(ctx) })
	m.HandleFunc("GET /v1/events", s.serveEvents)
	m.HandleFunc("GET /v1/events/recent", s.recentEvents)
	m.HandleFunc("GET /v1/log-level", s.getLevel)
	m.HandleFunc("PUT /v1/log-level", s.putLevel)
	return m
}

// nonNil turns a nil slice into an empty one so JSON shows [] not null.
func nonNil[T any](v []T, err error) (any, error) {
	if v == nil {
		v = []T{}
	}
	return v, err
}

func (s *Server) getLevel(w http.ResponseWriter, r *http.Request) {
	if s.level == nil {
		s.writeError(w, r, http.StatusNotFound, errors.New("log level is not adjustable"))
		return
	}
	s.reply(w, r, LogLevel{Level: s.level.Level().String()}, nil)
}

func (s *Server) putLevel(w http.ResponseWriter, r *http.Request) {
	if s.level == nil {
		s.writeError(w, r, http.StatusNotFound, errors.New("log level is not adjustable"))
		return
	}
	var req LogLevel
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<10)).Decode(&req); err != nil {
		s.writeError(w, r, http.StatusBadRequest, fmt.Errorf("bad request body: %w", err))
		return
	}
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(req.Level)); err != nil || lvl < zapcore.DebugLevel || lvl > zapcore.ErrorLevel {
		s.writeError(w, r, http.StatusBadRequest, fmt.Errorf("%q is not debug, info, warn or error", req.Level))
		return
	}
	old := s.level.Level()
	s.level.SetLevel(lvl)
	s.log.Warn("log level changed", zap.Stringer("from", old), zap.Stringer("to", lvl))
	s.reply(w, r, LogLevel{Level: lvl.String()}, nil)
}

func (s *Server) reply(w http.ResponseWriter, r *http.Request, v any, err error) {
	switch {
	case errors.Is(err, ErrNotEnabled), errors.Is(err, ErrNotFound):
		s.writeError(w, r, http.StatusNotFound, err)
		return
	case err != nil:
		s.writeError(w, r, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		s.log.Debug("api: write reply", zap.String("path", r.URL.Path), zap.Error(err))
	}
}

type errorBody struct {
	Error string `json:"error"`
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, code int, err error) {
	s.log.Info("api request failed", zap.String("path", r.URL.Path), zap.Int("status", code), zap.Error(err))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(errorBody{Error: err.Error()})
}
