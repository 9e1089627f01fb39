package metrics

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
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
	Directions = []string{"sent", "received"}
	Results    = []string{"success", "failure", "timeout"}
	PeerStates = []string{"up", "nhrp", "ike"}
	SAStates   = []string{"established", "connecting", "down"}
	BGPStates  = []string{"idle", "connect", "active", "opensent", "openconfirm", "established"}
	Subsystems = []string{"kernel", "ipsec", "routing", "nhrp", "qos"}
	// "partial": applied, but some changed keys wait for a restart.
	ReloadOutcomes = []string{"success", "partial", "failure"}
	// IKEFailureReasons are the classes of the "reason" label of
	// dmvpnd_ipsec_ike_failures_total.
	IKEFailureReasons = []string{"timeout", "ike_sa_deleted", "child_sa_deleted", "charon_lost", "error"}
	// PrefixStates label dmvpnd_bgp_prefixes.
	PrefixStates = []string{"received", "accepted", "rejected"}
)

// Drop reasons are not listed here: the engine owns that enumeration and
// the controller labels dmvpnd_nhrp_drops_total with the engine's own
// names (PrecreateDrops pre-creates the ones it declares).

// Metrics is the set of dmvpnd metrics. The controller updates the fields;
// gauges for states are best set through SetPeers, SetSAs and SetBGPSessions.
type Metrics struct {
	reg *prometheus.Registry
	// stateMu guards extraStates: per state gauge, the states outside
	// its known list that have a series (setStates).
	stateMu     sync.Mutex
	extraStates map[*prometheus.GaugeVec]map[string]bool
	// qos exports the per-tunnel QoS classes' counters (SetQoSSource).
	qos *qosCollector

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
	// HeldForSA counts NHRP packets received before the IPsec SA that
	// proves their source was reported, and held for it; ReleasedBySA
	// those of them handled once it was (the others are counted as
	// dropped, reason untrusted or ambiguous_sa).
	HeldForSA, ReleasedBySA prometheus.Counter
	// ReconcileErrors counts failed reconcile passes by subsystem.
	ReconcileErrors *prometheus.CounterVec
	// ConfigReloads counts configuration reloads by result.
	ConfigReloads *prometheus.CounterVec
	// QoSUnknownGroups counts peers announcing an NHRP group no qos.groups
	// policy exists for (once per peer and group).
	QoSUnknownGroups prometheus.Counter
	// Build is 1, labelled with the version.
	Build *prometheus.GaugeVec

	// NHSUp is 1 while this node is registered with the NHS (label nhs,
	// its NBMA address), else 0.
	NHSUp *prometheus.GaugeVec
	// NHSLastRegistration is the Unix time of the last successful
	// registration with the NHS.
	NHSLastRegistration *prometheus.GaugeVec
	// Ready is 1 while dmvpnctl status reports ready.
	Ready prometheus.Gauge
	// CacheEntries is the NHRP cache's size, CacheLimit its configured
	// bound (nhrp.limits.cache_size).
	CacheEntries, CacheLimit prometheus.Gauge
	// IKEFailures counts SAs lost or not established, by reason class.
	IKEFailures *prometheus.CounterVec
	// BGPPrefixes is the number of prefixes received, accepted and
	// rejected (by the import policy) over all sessions.
	BGPPrefixes *prometheus.GaugeVec
	// BGPNeighborRejected is the number of prefixes each neighbor sent
	// that the import policy rejects, and BGPNeighborLastDown (1, with the
	// reason as label) why its session last went down; both only for the
	// neighbors concerned, so that a hub with thousands of healthy spokes
	// exports no series per spoke.
	BGPNeighborRejected *prometheus.GaugeVec
	BGPNeighborLastDown *prometheus.GaugeVec
	// LoopLatency is how long the controller loop took to answer the
	// metrics publisher's snapshot request (queueing plus work).
	LoopLatency prometheus.Histogram
	// LoopHeartbeat is the Unix time the loop last answered; it stops
	// moving when the loop is stuck.
	LoopHeartbeat prometheus.Gauge
}

// New returns Metrics registered on a fresh registry with the Go and process
// collectors.
func New(version string) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	auto := promauto.With(reg)
	top, nhrp, ipsec, bgp, qos, loop := family{auto, ""}, family{auto, "nhrp"}, family{auto, "ipsec"},
		family{auto, "bgp"}, family{auto, "qos"}, family{auto, "controller"}
	m := &Metrics{
		reg: reg,
		qos: newQoSCollector(),

		Peers:           top.gaugeVec("peers", "Tunnel peers by state.", "state"),
		ReconcileErrors: top.counterVec("reconcile_errors_total", "Failed reconcile passes by subsystem.", "subsystem"),
		ConfigReloads:   top.counterVec("config_reloads_total", "Configuration reloads by result.", "result"),
		Build:           top.gaugeVec("build_info", "Always 1; labelled with the dmvpnd version.", "version"),
		Ready:           top.gauge("ready", "1 while the node is ready (a spoke registered with an NHS and its BGP sessions up), else 0."),

		Registrations:      nhrp.counterVec("registrations_total", "NHRP registrations by direction (sent, received) and result.", "direction", "result"),
		Resolutions:        nhrp.counterVec("resolutions_total", "NHRP resolutions by direction (sent, received) and result.", "direction", "result"),
		Redirects:          nhrp.counterVec("redirects_total", "NHRP traffic indications (redirects) by direction.", "direction"),
		ShortcutsInstalled: nhrp.counter("shortcuts_installed_total", "Shortcut routes installed."),
		Shortcuts:          nhrp.gauge("shortcuts", "Shortcut routes currently installed."),
		PacketsReceived:    nhrp.counterVec("packets_received_total", "NHRP packets received by type.", "type"),
		PacketsSent:        nhrp.counterVec("packets_sent_total", "NHRP packets sent by type.", "type"),
		Drops:              nhrp.counterVec("drops_total", "NHRP packets dropped by reason.", "reason"),
		HeldForSA:          nhrp.counter("held_for_sa_total", "NHRP packets received before the IPsec SA proving their source was reported, held for it."),
		ReleasedBySA:       nhrp.counter("released_by_sa_total", "NHRP packets held for their IPsec SA and handled once it was reported."),
		NHSUp:              nhrp.gaugeVec("nhs_up", "1 while registered with the NHS (label nhs: its NBMA address), else 0.", "nhs"),
		NHSLastRegistration: nhrp.gaugeVec("nhs_last_registration_timestamp_seconds",
			"Unix time of the last successful registration with the NHS.", "nhs"),
		CacheEntries: nhrp.gauge("cache_entries", "NHRP cache entries."),
		CacheLimit:   nhrp.gauge("cache_entries_limit", "Configured bound of the NHRP cache (nhrp.limits.cache_size)."),

		SAs:         ipsec.gaugeVec("sas", "IPsec SAs by state.", "state"),
		IKEFailures: ipsec.counterVec("ike_failures_total", "IKE/IPsec SAs lost or not established, by reason class.", "reason"),

		BGPSessions: bgp.gaugeVec("sessions", "BGP sessions by FSM state.", "state"),
		BGPPrefixes: bgp.gaugeVec("prefixes", "BGP prefixes over all sessions: received, accepted and rejected by the import policy.", "state"),
		BGPNeighborRejected: bgp.gaugeVec("neighbor_prefixes_rejected",
			"Prefixes a BGP neighbor sent that the import policy rejects (only neighbors with rejections).", "neighbor"),
		BGPNeighborLastDown: bgp.gaugeVec("neighbor_last_down_info",
			"Always 1: why a BGP neighbor's session last went down (only neighbors whose session went down).", "neighbor", "reason"),

		QoSUnknownGroups: qos.counter("unknown_groups_total",
			"Peers announcing an NHRP group that no qos.groups policy exists for (once per peer and group)."),

		LoopLatency: auto.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: loop.subsystem, Name: "loop_latency_seconds",
			Help:    "Time the controller loop took to answer a snapshot request.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}),
		LoopHeartbeat: loop.gauge("loop_heartbeat_timestamp_seconds", "Unix time the controller loop last answered a snapshot request."),
	}
	reg.MustRegister(m.qos)
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
	for _, r := range IKEFailureReasons {
		m.IKEFailures.WithLabelValues(r)
	}
	for _, s := range PrefixStates {
		m.BGPPrefixes.WithLabelValues(s)
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

// family makes the metric families of one subsystem, registering each as
// it is made (promauto), so that none is declared and left unexported.
type family struct {
	auto      promauto.Factory
	subsystem string
}

func (f family) opts(name, help string) prometheus.Opts {
	return prometheus.Opts{Namespace: ns, Subsystem: f.subsystem, Name: name, Help: help}
}

func (f family) counter(name, help string) prometheus.Counter {
	return f.auto.NewCounter(prometheus.CounterOpts(f.opts(name, help)))
}

func (f family) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return f.auto.NewCounterVec(prometheus.CounterOpts(f.opts(name, help)), labels)
}

func (f family) gauge(name, help string) prometheus.Gauge {
	return f.auto.NewGauge(prometheus.GaugeOpts(f.opts(name, help)))
}

func (f family) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return f.auto.NewGaugeVec(prometheus.GaugeOpts(f.opts(name, help)), labels)
}

// PrecreateDrops makes the drop series of these reasons exist at 0, so
// that rate() and alerts see them before the first drop. Pass the engine's
// own enumeration; never a list of names it does not emit.
func (m *Metrics) PrecreateDrops(reasons []string) {
	for _, r := range reasons {
		m.Drops.WithLabelValues(r)
	}
}

// SetNHSs replaces the per-NHS gauges: up maps each NHS (its NBMA address)
// to whether this node is registered with it; last holds the time of the
// last successful registration (absent: never).
func (m *Metrics) SetNHSs(up map[string]bool, last map[string]time.Time) {
	m.NHSUp.Reset()
	for n, u := range up {
		v := 0.0
		if u {
			v = 1
		}
		m.NHSUp.WithLabelValues(n).Set(v)
	}
	m.NHSLastRegistration.Reset()
	for n, t := range last {
		m.NHSLastRegistration.WithLabelValues(n).Set(float64(t.UnixNano()) / 1e9)
	}
}

// SetBGPPrefixes sets the prefix gauges.
func (m *Metrics) SetBGPPrefixes(received, accepted, rejected int) {
	m.BGPPrefixes.WithLabelValues("received").Set(float64(received))
	m.BGPPrefixes.WithLabelValues("accepted").Set(float64(accepted))
	m.BGPPrefixes.WithLabelValues("rejected").Set(float64(rejected))
}

// BGPNeighbor is what SetBGPNeighbors exports of one neighbor.
type BGPNeighbor struct {
	Address  string
	Rejected int
	LastDown string
}

// SetBGPNeighbors replaces the per-neighbor series: rejections for the
// neighbors with any, the last teardown reason for those with one.
func (m *Metrics) SetBGPNeighbors(ns []BGPNeighbor) {
	m.BGPNeighborRejected.Reset()
	m.BGPNeighborLastDown.Reset()
	for _, n := range ns {
		if n.Rejected > 0 {
			m.BGPNeighborRejected.WithLabelValues(n.Address).Set(float64(n.Rejected))
		}
		if n.LastDown != "" {
			m.BGPNeighborLastDown.WithLabelValues(n.Address, n.LastDown).Set(1)
		}
	}
}

// Registry returns the dedicated registry, for extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// SetPeers replaces the peers-by-state gauge; known states missing from
// counts read 0.
func (m *Metrics) SetPeers(counts map[string]int) { m.setStates(m.Peers, PeerStates, counts) }

// SetSAs replaces the SAs-by-state gauge.
func (m *Metrics) SetSAs(counts map[string]int) { m.setStates(m.SAs, SAStates, counts) }

// SetBGPSessions replaces the BGP-sessions-by-state gauge.
func (m *Metrics) SetBGPSessions(counts map[string]int) {
	m.setStates(m.BGPSessions, BGPStates, counts)
}

// setStates replaces the series of g with counts: a known state missing
// from counts reads 0, another state's series is deleted once it is no
// longer counted. The series are updated in place, not reset and made
// again: this runs at every publication (every 5 s on an idle hub), and
// a reset vector allocates each of its series anew.
func (m *Metrics) setStates(g *prometheus.GaugeVec, known []string, counts map[string]int) {
	for _, s := range known {
		g.WithLabelValues(s).Set(float64(counts[s]))
	}
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	extra := m.extraStates[g]
	for s := range extra {
		if _, ok := counts[s]; !ok {
			g.DeleteLabelValues(s)
			delete(extra, s)
		}
	}
	for s, n := range counts {
		if slices.Contains(known, s) {
			continue
		}
		if extra == nil {
			extra = map[string]bool{}
			if m.extraStates == nil {
				m.extraStates = map[*prometheus.GaugeVec]map[string]bool{}
			}
			m.extraStates[g] = extra
		}
		extra[s] = true
		g.WithLabelValues(s).Set(float64(n))
	}
}

// Names returns the name of every dmvpnd_ metric family the registry
// declares, including those without a series yet (a labelled vector before
// its first label set); histograms are listed by their base name.
func (m *Metrics) Names() []string {
	ch := make(chan *prometheus.Desc)
	go func() {
		m.reg.Describe(ch)
		close(ch)
	}()
	seen := map[string]bool{}
	for d := range ch {
		if n := descName(d); strings.HasPrefix(n, ns+"_") {
			seen[n] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// descName extracts fqName from a Desc (it has no accessor).
func descName(d *prometheus.Desc) string {
	s := d.String()
	_, rest, ok := strings.Cut(s, `fqName: "`)
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, `"`)
	return name
}

// QoSSample is one per-tunnel QoS class's counters: Peer is the peer's
// tunnel address (its GRE destination while unknown), Group its policy.
type QoSSample struct {
	Peer, Group, Class    string
	Bytes, Packets, Drops uint64
}

// qosCollector exports the per-tunnel QoS counters at scrape time from
// the source the controller sets; only peers with a policy have series.
type qosCollector struct {
	mu                    sync.Mutex
	source                func() []QoSSample
	bytes, packets, drops *prometheus.Desc
}

func newQoSCollector() *qosCollector {
	labels := []string{"peer", "group", "class"}
	return &qosCollector{
		bytes: prometheus.NewDesc(ns+"_qos_class_bytes_total",
			"Bytes sent by a per-tunnel QoS class (only peers with a policy).", labels, nil),
		packets: prometheus.NewDesc(ns+"_qos_class_packets_total",
			"Packets sent by a per-tunnel QoS class (only peers with a policy).", labels, nil),
		drops: prometheus.NewDesc(ns+"_qos_class_drops_total",
			"Packets a per-tunnel QoS class's queue dropped (only peers with a policy).", labels, nil),
	}
}

func (q *qosCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- q.bytes
	ch <- q.packets
	ch <- q.drops
}

func (q *qosCollector) Collect(ch chan<- prometheus.Metric) {
	q.mu.Lock()
	src := q.source
	q.mu.Unlock()
	if src == nil {
		return
	}
	for _, s := range src() {
		ch <- prometheus.MustNewConstMetric(q.bytes, prometheus.CounterValue, float64(s.Bytes), s.Peer, s.Group, s.Class)
		ch <- prometheus.MustNewConstMetric(q.packets, prometheus.CounterValue, float64(s.Packets), s.Peer, s.Group, s.Class)
		ch <- prometheus.MustNewConstMetric(q.drops, prometheus.CounterValue, float64(s.Drops), s.Peer, s.Group, s.Class)
	}
}

// SetQoSSource sets where the per-tunnel QoS series come from, read at
// each scrape (nil: none).
func (m *Metrics) SetQoSSource(f func() []QoSSample) {
	m.qos.mu.Lock()
	defer m.qos.mu.Unlock()
	m.qos.source = f
}
