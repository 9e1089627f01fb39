package api

import (
	"fmt"
	"net/http"
	"net/netip"

	"go.uber.org/zap"
)

// peerRoutes adds the per-peer views (peers, QoS) and clears.
func (s *Server) peerRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /v1/dmvpn/peers", func(w http.ResponseWriter, r *http.Request) {
		v, err := nonNil(s.p.PeerDetails(r.Context(), netip.Addr{}))
		s.reply(w, r, v, err)
	})
	withAddr := func(f func(w http.ResponseWriter, r *http.Request, a netip.Addr)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			a, err := netip.ParseAddr(r.PathValue("addr"))
			if err != nil {
				s.writeError(w, r, http.StatusBadRequest, fmt.Errorf("%q is not an address", r.PathValue("addr")))
				return
			}
			f(w, r, a)
		}
	}
	m.HandleFunc("GET /v1/dmvpn/peers/{addr}", withAddr(func(w http.ResponseWriter, r *http.Request, a netip.Addr) {
		v, err := nonNil(s.p.PeerDetails(r.Context(), a))
		s.reply(w, r, v, err)
	}))
	m.HandleFunc("POST /v1/dmvpn/peers/{addr}/clear", withAddr(func(w http.ResponseWriter, r *http.Request, a netip.Addr) {
		res, err := s.p.ClearPeer(r.Context(), a)
		s.log.Info("dmvpn peer cleared", zap.Stringer("peer", a), zap.Strings("actions", res.Actions), zap.Error(err))
		if res.Actions == nil {
			res.Actions = []string{}
		}
		s.reply(w, r, res, err)
	}))
	m.HandleFunc("GET /v1/qos", func(w http.ResponseWriter, r *http.Request) {
		v, err := nonNil(s.p.QoS(r.Context(), netip.Addr{}))
		s.reply(w, r, v, err)
	})
	m.HandleFunc("GET /v1/qos/{addr}", withAddr(func(w http.ResponseWriter, r *http.Request, a netip.Addr) {
		v, err := nonNil(s.p.QoS(r.Context(), a))
		s.reply(w, r, v, err)
	}))
	m.HandleFunc("POST /v1/nhrp/registrations/{addr}/clear", withAddr(func(w http.ResponseWriter, r *http.Request, a netip.Addr) {
		n, err := s.p.ClearRegistration(r.Context(), a)
		s.log.Info("nhrp registration cleared", zap.Stringer("peer", a), zap.Int("entries", n), zap.Error(err))
		s.reply(w, r, ClearResult{Cleared: n}, err)
	}))
}
