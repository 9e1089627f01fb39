package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestScrape(t *testing.T) {
	m := New("v1.2.3")
	srv := httptest.NewServer(m.Mux())
	defer srv.Close()

	m.Registrations.WithLabelValues("received", "success").Add(3)
	m.Resolutions.WithLabelValues("sent", "timeout").Inc()
	m.Redirects.WithLabelValues("sent").Inc()
	m.ShortcutsInstalled.Inc()
	m.Shortcuts.Set(2)
	m.PacketsReceived.WithLabelValues("registration_request").Add(3)
	m.PacketsSent.WithLabelValues("traffic_indication").Inc()
	m.PrecreateDrops([]string{"malformed", "auth"})
	m.Drops.WithLabelValues("auth").Inc()
	m.HeldForSA.Add(2)
	m.ReleasedBySA.Inc()
	m.SetNHSs(map[string]bool{"192.0.2.1": true, "192.0.2.2": false}, map[string]time.Time{"192.0.2.1": time.Unix(1700000000, 0)})
	m.Ready.Set(1)
	m.CacheEntries.Set(7)
	m.CacheLimit.Set(10000)
	m.IKEFailures.WithLabelValues("timeout").Inc()
	m.SetBGPPrefixes(11, 3, 8)
	m.SetBGPNeighbors([]BGPNeighbor{{Address: "10.0.0.2"}, {Address: "10.0.0.4", Rejected: 8, LastDown: "hold-timer-expired"}})
	m.LoopLatency.Observe(0.002)
	m.ReconcileErrors.WithLabelValues("kernel").Inc()
	m.SetPeers(map[string]int{"up": 3, "ike": 1})
	m.SetSAs(map[string]int{"established": 3})
	m.SetBGPSessions(map[string]int{"established": 2, "active": 1})
	m.ConfigReloads.WithLabelValues("failure").Inc()

	body := scrape(t, srv.URL+"/metrics")
	want := []string{
		`dmvpnd_nhrp_registrations_total{direction="received",result="success"} 3`,
		`dmvpnd_nhrp_registrations_total{direction="sent",result="failure"} 0`,
		`dmvpnd_nhrp_resolutions_total{direction="sent",result="timeout"} 1`,
		`dmvpnd_nhrp_redirects_total{direction="sent"} 1`,
		`dmvpnd_nhrp_shortcuts_installed_total 1`,
		`dmvpnd_nhrp_shortcuts 2`,
		`dmvpnd_nhrp_packets_received_total{type="registration_request"} 3`,
		`dmvpnd_nhrp_packets_received_total{type="purge_reply"} 0`,
		`dmvpnd_nhrp_packets_sent_total{type="traffic_indication"} 1`,
		`dmvpnd_nhrp_drops_total{reason="auth"} 1`,
		`dmvpnd_nhrp_drops_total{reason="malformed"} 0`,
		`dmvpnd_nhrp_held_for_sa_total 2`,
		`dmvpnd_nhrp_released_by_sa_total 1`,
		`dmvpnd_reconcile_errors_total{subsystem="kernel"} 1`,
		`dmvpnd_peers{state="up"} 3`,
		`dmvpnd_peers{state="nhrp"} 0`,
		`dmvpnd_nhrp_nhs_up{nhs="192.0.2.1"} 1`,
		`dmvpnd_nhrp_nhs_up{nhs="192.0.2.2"} 0`,
		`dmvpnd_nhrp_nhs_last_registration_timestamp_seconds{nhs="192.0.2.1"} 1.7e+09`,
		`dmvpnd_ready 1`,
		`dmvpnd_nhrp_cache_entries 7`,
		`dmvpnd_nhrp_cache_entries_limit 10000`,
		`dmvpnd_ipsec_ike_failures_total{reason="timeout"} 1`,
		`dmvpnd_ipsec_ike_failures_total{reason="charon_lost"} 0`,
		`dmvpnd_bgp_prefixes{state="accepted"} 3`,
		`dmvpnd_bgp_prefixes{state="rejected"} 8`,
		`dmvpnd_bgp_neighbor_prefixes_rejected{neighbor="10.0.0.4"} 8`,
		`dmvpnd_bgp_neighbor_last_down_info{neighbor="10.0.0.4",reason="hold-timer-expired"} 1`,
		`dmvpnd_controller_loop_latency_seconds_bucket{le="0.0025"} 1`,
		`dmvpnd_peers{state="ike"} 1`,
		`dmvpnd_ipsec_sas{state="established"} 3`,
		`dmvpnd_bgp_sessions{state="active"} 1`,
		`dmvpnd_config_reloads_total{result="failure"} 1`,
		`dmvpnd_build_info{version="v1.2.3"} 1`,
		`go_goroutines `,
		`process_start_time_seconds `,
	}
	var missing []string
	for _, w := range want {
		if !strings.Contains(body, w) {
			missing = append(missing, w)
		}
	}
	if diff := cmp.Diff([]string(nil), missing); diff != "" {
		t.Errorf("scrape lacks lines (-want +got):\n%s\n--- body ---\n%s", diff, body)
	}
	if strings.Contains(body, `neighbor="10.0.0.2"`) {
		t.Errorf("a healthy neighbor has per-neighbor series:\n%s", body)
	}
	if idx := scrape(t, srv.URL+"/"); !strings.Contains(idx, "/metrics") {
		t.Errorf("index = %q", idx)
	}
}

func TestSetStatesReplaces(t *testing.T) {
	m := New("test")
	m.SetPeers(map[string]int{"up": 5})
	m.SetPeers(map[string]int{"down": 1})
	if got := value(t, m.Peers.WithLabelValues("up")); got != 0 {
		t.Errorf("peers{up} = %v after replacement, want 0", got)
	}
	if got := value(t, m.Peers.WithLabelValues("down")); got != 1 {
		t.Errorf("peers{down} = %v, want 1", got)
	}
	// A state outside the known ones loses its series once not counted.
	m.SetPeers(map[string]int{"up": 2})
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() == "dmvpnd_peers" {
			for _, s := range mf.GetMetric() {
				got[s.GetLabel()[0].GetValue()] = s.GetGauge().GetValue()
			}
		}
	}
	if diff := cmp.Diff(map[string]float64{"up": 2, "nhrp": 0, "ike": 0}, got); diff != "" {
		t.Errorf("dmvpnd_peers series (-want +got):\n%s", diff)
	}
}

// Publishing the same states again (every metricsInterval on an idle
// hub) allocates nothing.
func TestSetStatesAllocs(t *testing.T) {
	m := New("test")
	counts := map[string]int{"up": 10000, "down": 3}
	m.SetPeers(counts)
	if n := testing.AllocsPerRun(100, func() { m.SetPeers(counts) }); n != 0 {
		t.Errorf("SetPeers with unchanged states: %v allocations, want 0", n)
	}
}

func TestDedicatedRegistry(t *testing.T) {
	a, b := New("a"), New("b") // two instances must not collide
	a.Shortcuts.Set(1)
	if got := value(t, b.Shortcuts); got != 0 {
		t.Errorf("instances share state: %v", got)
	}
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "dmvpnd_") {
			t.Errorf("%s registered on the global registry", mf.GetName())
		}
	}
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	if body := scrape(t, srv.URL); !strings.Contains(body, "\ndmvpnd_nhrp_shortcuts 1\n") {
		t.Errorf("scrape of a lacks dmvpnd_nhrp_shortcuts 1:\n%s", body)
	}
}

// value reads a gauge or counter.
func value(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	t.Fatalf("not a gauge or counter: %v", &m)
	return 0
}

// TestNoDropReasonWithoutEngine: no drop series exists before the engine's
// reasons are pre-created (no invented names).
func TestNoDropReasonWithoutEngine(t *testing.T) {
	m := New("test")
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	if body := scrape(t, srv.URL); strings.Contains(body, "dmvpnd_nhrp_drops_total{") {
		t.Errorf("drop series exist before PrecreateDrops:\n%s", body)
	}
}

func TestNames(t *testing.T) {
	names := New("test").Names()
	for _, want := range []string{"dmvpnd_nhrp_nhs_up", "dmvpnd_controller_loop_latency_seconds", "dmvpnd_nhrp_drops_total", "dmvpnd_ready"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("Names() lacks %s: %v", want, names)
		}
	}
	for _, n := range names {
		if !strings.HasPrefix(n, "dmvpnd_") {
			t.Errorf("Names() has %s", n)
		}
	}
}

// TestQoSSeries: the per-tunnel QoS families are declared before any
// source, have no series without one, and export each sample the source
// returns at scrape time (a later scrape sees the source's new values).
func TestQoSSeries(t *testing.T) {
	m := New("test")
	names := m.Names()
	for _, n := range []string{"dmvpnd_qos_class_bytes_total", "dmvpnd_qos_class_packets_total", "dmvpnd_qos_class_drops_total"} {
		if !slices.Contains(names, n) {
			t.Errorf("Names() lacks %s", n)
		}
	}
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	if body := scrape(t, srv.URL); strings.Contains(body, "dmvpnd_qos_class_") {
		t.Errorf("QoS series without a source:\n%s", body)
	}
	drops := uint64(7)
	m.SetQoSSource(func() []QoSSample {
		return []QoSSample{{Peer: "10.0.0.2", Group: "branch-2m", Class: "voice", Bytes: 47600, Packets: 200},
			{Peer: "10.0.0.2", Group: "branch-2m", Class: "default", Bytes: 100, Packets: 1, Drops: drops}}
	})
	body := scrape(t, srv.URL)
	for _, want := range []string{
		`dmvpnd_qos_class_bytes_total{class="voice",group="branch-2m",peer="10.0.0.2"} 47600`,
		`dmvpnd_qos_class_packets_total{class="voice",group="branch-2m",peer="10.0.0.2"} 200`,
		`dmvpnd_qos_class_drops_total{class="default",group="branch-2m",peer="10.0.0.2"} 7`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %s:\n%s", want, body)
		}
	}
	drops = 9
	if body := scrape(t, srv.URL); !strings.Contains(body, `dmvpnd_qos_class_drops_total{class="default",group="branch-2m",peer="10.0.0.2"} 9`) {
		t.Errorf("second scrape did not read the source again:\n%s", body)
	}
}
