package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const ns = "dmvpnd"

// NHRP packet types as used in the "type" label.
var PacketTypes = []string{
	"resolution_request", "resolution_reply",
	"registration_request", "registration_reply",
	"purge_request", "purge_reply",
	"error_indication", "traffic_indication",
}

// Known label values, pre-created so their series exist at 0.
var (
	Directions     = []string{"sent", "received"}
	Results        = []string{"success", "failure", "timeout"}
	PeerStates     = []string{"up", "down", "nhrp", "ike"}
	SAStates       = []string{"established", "connecting", "rekeying", "down"}
	BGPStates      = []string{"idle", "connect", "active", "opensent", "openconfirm", "established"}
	DropReasons    = []string{"malformed", "checksum", "auth_failure", "rate_limited", "hop_count", "unknown_type", "no_binding", "queue_full"}
	Subsystems     = []string{"kernel", "ipsec", "routing", "nhrp"}
	ReloadOutcomes = []string{"success", "failure"}
)

// Metrics is the set of dmvpnd metrics. The controller updates the fields;
// gauges for states are best set through SetPeers, SetSAs and SetBGPSessions.
type Metrics struct {
	reg *prometheus.Registry

	// Registrations counts NHRP registrations by direction (sent by a
	// spoke, received by a hub) and result.
	Registrations *prometheus.CounterVec
	// Resolutions counts NHRP resolutions by direction and result.
	Resolutions *prometheus.CounterVec
	// Redirects counts traffic indications by direction.
	Redirects *prometheus.CounterVec
	// ShortcutsInstalled counts shortcut routes installed.
	ShortcutsInstalled prometheus.Counter
	// Shortcuts is the number of shortcut routes installed now.
	Shortcuts prometheus.Gauge
	// Peers is the number of peers by state.
	Peers *prometheus.GaugeVec
	// SAs is the number of IPsec SAs by state.
	SAs *prometheus.GaugeVec
	// BGPSessions is the number of BGP sessions by FSM state.
	BGPSessions *prometheus.GaugeVec
	// PacketsReceived and PacketsSent count NHRP packets by type.
	PacketsReceived *prometheus.CounterVec
	PacketsSent     *prometheus.CounterVec
	// Drops counts NHRP packets dropped, by reason.
	Drops *prometheus.CounterVec
	// ReconcileErrors counts failed reconcile passes by subsystem.
	ReconcileErrors *prometheus.CounterVec
	// ConfigReloads counts configuration reloads by result.
	ConfigReloads *prometheus.CounterVec
	// Build is 1, labelled with the version.
	Build *prometheus.GaugeVec
}

// New returns Metrics registered on a fresh registry with the Go and process
// collectors.
func New(version string) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		Registrations: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "nhrp", Name: "registrations_total",
			Help: "NHRP registrations by direction (sent, received) and result."}, []string{"direction", "result"}),
		Resolutions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "nhrp", Name: "resolutions_total",
			Help: "NHRP resolutions by direction (sent, received) and result."}, []string{"direction", "result"}),
		Redirects: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "nhrp", Name: "redirects_total",
			Help: "NHRP traffic indications (redirects) by direction."}, []string{"direction"}),
		ShortcutsInstalled: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: "nhrp", Name: "shortcuts_installed_total",
			Help: "Shortcut routes installed."}),
		Shortcuts: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: "nhrp", Name: "shortcuts",
			Help: "Shortcut routes currently installed."}),
		Peers: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "peers",
			Help: "Tunnel peers by state."}, []string{"state"}),
		SAs: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: "ipsec", Name: "sas",
			Help: "IPsec SAs by state."}, []string{"state"}),
		BGPSessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: "bgp", Name: "sessions",
			Help: "BGP sessions by FSM state."}, []string{"state"}),
		PacketsReceived: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "nhrp", Name: "packets_received_total",
			Help: "NHRP packets received by type."}, []string{"type"}),
		PacketsSent: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "nhrp", Name: "packets_sent_total",
			Help: "NHRP packets sent by type."}, []string{"type"}),
		Drops: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "nhrp", Name: "drops_total",
			Help: "NHRP packets dropped by reason."}, []string{"reason"}),
		ReconcileErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "reconcile_errors_total",
			Help: "Failed reconcile passes by subsystem."}, []string{"subsystem"}),
		ConfigReloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "config_reloads_total",
			Help: "Configuration reloads by result."}, []string{"result"}),
		Build: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "build_info",
			Help: "Always 1; labelled with the dmvpnd version."}, []string{"version"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.Registrations, m.Resolutions, m.Redirects, m.ShortcutsInstalled, m.Shortcuts,
		m.Peers, m.SAs, m.BGPSessions, m.PacketsReceived, m.PacketsSent, m.Drops,
		m.ReconcileErrors, m.ConfigReloads, m.Build,
	)
	for _, d := range Directions {
		m.Redirects.WithLabelValues(d)
		for _, r := range Results {
			m.Registrations.WithLabelValues(d, r)
			m.Resolutions.WithLabelValues(d, r)
		}
	}
	for _, t := range PacketTypes {
		m.PacketsReceived.WithLabelValues(t)
		m.PacketsSent.WithLabelValues(t)
	}
	for _, r := range DropReasons {
		m.Drops.WithLabelValues(r)
	}
	for _, s := range Subsystems {
		m.ReconcileErrors.WithLabelValues(s)
	}
	for _, r := range ReloadOutcomes {
		m.ConfigReloads.WithLabelValues(r)
	}
	m.SetPeers(nil)
	m.SetSAs(nil)
	m.SetBGPSessions(nil)
	m.Build.WithLabelValues(version).Set(1)
	return m
}

// Registry returns the dedicated registry, for extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// SetPeers replaces the peers-by-state gauge; known states missing from
// counts read 0.
func (m *Metrics) SetPeers(counts map[string]int) { setStates(m.Peers, PeerStates, counts) }

// SetSAs replaces the SAs-by-state gauge.
func (m *Metrics) SetSAs(counts map[string]int) { setStates(m.SAs, SAStates, counts) }

// SetBGPSessions replaces the BGP-sessions-by-state gauge.
func (m *Metrics) SetBGPSessions(counts map[string]int) { setStates(m.BGPSessions, BGPStates, counts) }

func setStates(g *prometheus.GaugeVec, known []string, counts map[string]int) {
	g.Reset()
	for _, s := range known {
		g.WithLabelValues(s).Set(0)
	}
	for s, n := range counts {
		g.WithLabelValues(s).Set(float64(n))
	}
}
