package e2e

// Helpers for issue 17's lab acceptance in the Phase 3 IPsec scenario
// (phase3_test.go, variant psk): the metrics endpoint scraped and the
// shipped alert evaluated by promtool, dmvpnctl monitor --json, and
// show dmvpn peer's SA counters. Names start with "obs".

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/controller/metrics"
	"github.com/dmvpnd/dmvpnd/e2e/lab"
)

// obsMetricsListen is where dmvpnd serves /metrics in a node's namespace
// (each namespace has its own loopback).
const obsMetricsListen = "127.0.0.1:9108"

// obsSamples is one scrape of the dmvpnd_ series: obsSeries key -> value.
type obsSamples map[string]float64

// obsSeries renders a series key: name{k="v",...} with the labels sorted
// by name; kv alternates label names and values.
func obsSeries(name string, kv ...string) string {
	if len(kv) == 0 {
		return name
	}
	pairs := make([]string, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		pairs = append(pairs, fmt.Sprintf("%s=%q", kv[i], kv[i+1]))
	}
	slices.Sort(pairs)
	return name + "{" + strings.Join(pairs, ",") + "}"
}

// obsParse parses the Prometheus text exposition into the dmvpnd_ series
// with one value (counters, gauges, untyped; histograms are left out).
func obsParse(text []byte) (obsSamples, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	out := obsSamples{}
	for name, f := range fams {
		if !strings.HasPrefix(name, "dmvpnd_") {
			continue
		}
		for _, m := range f.GetMetric() {
			var v float64
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				v = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				v = m.GetGauge().GetValue()
			case dto.MetricType_UNTYPED:
				v = m.GetUntyped().GetValue()
			default:
				continue
			}
			var kv []string
			for _, l := range m.GetLabel() {
				kv = append(kv, l.GetName(), l.GetValue())
			}
			out[obsSeries(name, kv...)] = v
		}
	}
	return out, nil
}

// obsScrape fetches d's /metrics from inside its namespace.
func obsScrape(ctx context.Context, d *dnode) (obsSamples, error) {
	res, err := d.node.Run(ctx, "curl -sS --max-time 5 http://"+obsMetricsListen+"/metrics")
	if err != nil {
		return nil, err
	}
	s, err := obsParse(res.Stdout)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.name, err)
	}
	return s, nil
}

// pick returns the values of the keys of want that s has.
func (s obsSamples) pick(want obsSamples) obsSamples {
	out := obsSamples{}
	for k := range want {
		if v, ok := s[k]; ok {
			out[k] = v
		}
	}
	return out
}

// obsWaitMetrics scrapes d until every series of want has its value (the
// daemon publishes its gauges every few seconds) and returns that scrape.
func obsWaitMetrics(ctx context.Context, d *dnode, timeout time.Duration, want obsSamples) (obsSamples, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last obsSamples
	err := lab.WaitFor(wctx, 500*time.Millisecond, func(ctx context.Context) error {
		s, err := obsScrape(ctx, d)
		if err != nil {
			return err
		}
		last = s
		if diff := cmp.Diff(want, s.pick(want)); diff != "" {
			return fmt.Errorf("%s metrics (-want +got):\n%s", d.name, diff)
		}
		return nil
	})
	if err != nil {
		return last, fmt.Errorf("%w (last scrape: %v)", err, last.pick(want))
	}
	return last, nil
}

// obsAtLeast fails unless each series of min is at least its value in s.
func obsAtLeast(s, min obsSamples) error {
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(min)) {
		if v, ok := s[k]; !ok || v < min[k] {
			errs = append(errs, fmt.Errorf("%s = %v (present %t), want at least %v", k, v, ok, min[k]))
		}
	}
	return errors.Join(errs...)
}

// obsMonitor is dmvpnctl monitor --json running on a node: events on
// stdout (the process log), its notice on stderr in a file of its own.
type obsMonitor struct {
	d      *dnode
	proc   *lab.Proc
	stderr string
}

// obsListening is what dmvpnctl monitor writes to stderr once the daemon
// has accepted its subscription.
const obsListening = "dmvpnctl monitor: listening on "

// obsStartMonitor starts dmvpnctl monitor --json against d's daemon once
// its control API answers, and returns when the monitor reports its
// subscription accepted: every event from then on is in its output.
func obsStartMonitor(ctx context.Context, d *dnode) (*obsMonitor, error) {
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := lab.WaitFor(wctx, 100*time.Millisecond, func(ctx context.Context) error {
		_, err := d.ctl(ctx, "status")
		return err
	}); err != nil {
		return nil, fmt.Errorf("%s: control API: %w", d.name, err)
	}
	stderr := filepath.Join(filepath.Dir(d.proc.Log), "monitor.stderr")
	p, err := d.node.Start(wctx, "monitor", fmt.Sprintf("%s/dmvpnctl --socket %s monitor --json 2>%s", d.bin, d.socket(), stderr))
	if err != nil {
		return nil, err
	}
	m := &obsMonitor{d: d, proc: p, stderr: stderr}
	err = lab.WaitFor(wctx, 100*time.Millisecond, func(ctx context.Context) error {
		b, _ := os.ReadFile(stderr)
		if strings.HasPrefix(string(b), obsListening+d.socket()+"\n") {
			return nil
		}
		if !p.Alive(ctx) {
			return lab.Permanent(fmt.Errorf("%s: dmvpnctl monitor exited: %q", d.name, b))
		}
		return fmt.Errorf("%s: dmvpnctl monitor not listening yet: %q", d.name, b)
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// events parses what the monitor printed so far: every stdout line must be
// one JSON event, and stderr must hold only the listening notice.
func (m *obsMonitor) events() ([]api.Event, error) {
	if b, err := os.ReadFile(m.stderr); err != nil || string(b) != obsListening+m.d.socket()+"\n" {
		return nil, fmt.Errorf("%s: monitor stderr %q (%v), want only the listening notice", m.d.name, b, err)
	}
	b, err := os.ReadFile(m.proc.Log)
	if err != nil {
		return nil, err
	}
	var out []api.Event
	for i, line := range strings.Split(string(b), "\n") {
		if line == "" && i == strings.Count(string(b), "\n") {
			break // after the last newline
		}
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		var ev api.Event
		if err := dec.Decode(&ev); err != nil {
			return nil, fmt.Errorf("%s: monitor line %d %q: %w", m.d.name, i+1, line, err)
		}
		out = append(out, ev)
	}
	return out, nil
}

// first returns the first event so far that matches; the error lists
// every event when none does.
func (m *obsMonitor) first(match func(api.Event) bool) (api.Event, error) {
	evs, err := m.events()
	if err != nil {
		return api.Event{}, err
	}
	if i := slices.IndexFunc(evs, match); i >= 0 {
		return evs[i], nil
	}
	return api.Event{}, fmt.Errorf("%s: no such event among the monitor's %d:%s", m.d.name, len(evs), obsEventList(evs))
}

// obsEventList renders events one per line, for messages.
func obsEventList(evs []api.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "\n  %s %s %s nbma=%s peer=%s prefix=%s %s", e.Time.Format(time.RFC3339Nano), e.Level, e.Kind, e.NBMA, e.PeerTunnel, e.Prefix, e.Reason)
	}
	return b.String()
}

// obsStep is one event a monitor must show, in order.
type obsStep struct {
	what  string
	match func(api.Event) bool
}

// obsCheckEvents checks a monitor's events: timestamps never go back and
// lie in [from, to] (the lab's clock), no event was lost, and steps occur
// in order (each one after the previous). It returns the matched events.
func obsCheckEvents(evs []api.Event, from, to time.Time, steps []obsStep) ([]api.Event, error) {
	var errs []error
	for i, ev := range evs {
		if ev.Kind == api.EventLost {
			errs = append(errs, fmt.Errorf("event %d: %d events lost", i, ev.Count))
		}
		if ev.Time.Before(from) || ev.Time.After(to) {
			errs = append(errs, fmt.Errorf("event %d %s at %v: outside the run [%v, %v]", i, ev.Kind, ev.Time, from, to))
		}
		if i > 0 && ev.Time.Before(evs[i-1].Time) {
			errs = append(errs, fmt.Errorf("event %d %s at %v precedes event %d %s at %v", i, ev.Kind, ev.Time, i-1, evs[i-1].Kind, evs[i-1].Time))
		}
	}
	var found []api.Event
	next := 0
	for _, st := range steps {
		i := slices.IndexFunc(evs[next:], st.match)
		if i < 0 {
			errs = append(errs, fmt.Errorf("no %s after event %d", st.what, next))
			break
		}
		found = append(found, evs[next+i])
		next += i + 1
	}
	return found, errors.Join(errs...)
}

// obsPeerDetail returns d's show dmvpn peer ADDR --json entry of the peer
// whose tunnel address is peer (the view lists every peer the address
// names).
func obsPeerDetail(ctx context.Context, d *dnode, peer netip.Addr) (api.PeerDetail, error) {
	v, err := ctlJSON[[]api.PeerDetail](ctx, d, "show dmvpn peer "+peer.String())
	if err != nil {
		return api.PeerDetail{}, err
	}
	i := slices.IndexFunc(v, func(p api.PeerDetail) bool { return p.Tunnel == peer })
	if len(v) != 1 || i != 0 {
		return api.PeerDetail{}, fmt.Errorf("%s: show dmvpn peer %s --json lists %d peers, want that one: %+v", d.name, peer, len(v), v)
	}
	return v[0], nil
}

// obsChild returns the peer's one installed CHILD_SA.
func obsChild(v api.PeerDetail) (api.ChildSA, error) {
	if v.SA == nil {
		return api.ChildSA{}, fmt.Errorf("peer %s: no SA", v.Tunnel)
	}
	var out []api.ChildSA
	for _, ike := range v.SA.IKESAs {
		for _, c := range ike.Children {
			if c.State == "INSTALLED" {
				out = append(out, c)
			}
		}
	}
	if len(out) != 1 {
		return api.ChildSA{}, fmt.Errorf("peer %s: %d installed CHILD_SAs, want 1: %+v", v.Tunnel, len(out), v.SA)
	}
	return out[0], nil
}

// obsRule is one alerting rule of deploy/prometheus/alerts.yml.
type obsRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         model.Duration    `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// obsAlertsFile is the shipped rule file, from the e2e package directory.
const obsAlertsFile = "../deploy/prometheus/alerts.yml"

// obsShippedRule reads the rule named alert from the shipped rule file.
func obsShippedRule(alert string) (obsRule, error) {
	b, err := os.ReadFile(obsAlertsFile)
	if err != nil {
		return obsRule{}, err
	}
	var f struct {
		Groups []struct {
			Rules []obsRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		return obsRule{}, fmt.Errorf("%s: %w", obsAlertsFile, err)
	}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert == alert {
				return r, nil
			}
		}
	}
	return obsRule{}, fmt.Errorf("%s: no alert %s", obsAlertsFile, alert)
}

// obsAnnotations renders a rule's annotation templates for an alert with
// labels and value the way Prometheus does ($labels, $value).
func obsAnnotations(r obsRule, labels map[string]string, value float64) (map[string]string, error) {
	out := map[string]string{}
	for k, text := range r.Annotations {
		tmpl, err := template.New(k).Option("missingkey=zero").Parse("{{$labels := .Labels}}{{$value := .Value}}" + text)
		if err != nil {
			return nil, fmt.Errorf("annotation %s: %w", k, err)
		}
		var b strings.Builder
		if err := tmpl.Execute(&b, struct {
			Labels map[string]string
			Value  float64
		}{labels, value}); err != nil {
			return nil, fmt.Errorf("annotation %s: %w", k, err)
		}
		out[k] = b.String()
	}
	return out, nil
}

// obsPromtoolAlert evaluates the shipped rule alert with promtool test
// rules on scraped samples: the series named metric of before and after
// (as Prometheus would store them, with instance and job labels) become
// input series sampled once a minute, before first and then after for
// longer than the rule's "for". The test file expects no alert on the
// before sample and the alert, with the shipped labels and rendered
// annotations, for instance once after has lasted "for". It returns the
// test file and promtool's output.
func obsPromtoolAlert(dir, alert, metric, instance string, before, after obsSamples) (string, string, error) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		return "", "", fmt.Errorf("promtool (Debian package prometheus, make deps): %w", err)
	}
	rule, err := obsShippedRule(alert)
	if err != nil {
		return "", "", err
	}
	rules, err := filepath.Abs(obsAlertsFile)
	if err != nil {
		return "", "", err
	}
	type series struct {
		Series string `yaml:"series"`
		Values string `yaml:"values"`
	}
	type expAlert struct {
		ExpLabels      map[string]string `yaml:"exp_labels"`
		ExpAnnotations map[string]string `yaml:"exp_annotations"`
	}
	type alertTest struct {
		EvalTime  model.Duration `yaml:"eval_time"`
		Alertname string         `yaml:"alertname"`
		ExpAlerts []expAlert     `yaml:"exp_alerts"`
	}
	// After the before sample, after lasts long enough for the rule to
	// hold for "for": pending at 1m, firing from 1m + for.
	steps := int(time.Duration(rule.For)/time.Minute) + 2
	var inputs []series
	set := map[string]bool{}
	for _, smp := range []obsSamples{before, after} {
		for k := range smp {
			if k == metric || strings.HasPrefix(k, metric+"{") {
				set[k] = true
			}
		}
	}
	keys := slices.Sorted(maps.Keys(set))
	if len(keys) == 0 {
		return "", "", fmt.Errorf("no %s series scraped", metric)
	}
	for _, k := range keys {
		b, okB := before[k]
		a, okA := after[k]
		if !okB || !okA {
			return "", "", fmt.Errorf("series %s scraped before %t, after %t", k, okB, okA)
		}
		name, labels, _ := strings.Cut(strings.TrimSuffix(k, "}"), "{")
		if labels != "" {
			labels += ","
		}
		labels += fmt.Sprintf("instance=%q,job=%q", instance, "dmvpnd")
		inputs = append(inputs, series{Series: name + "{" + labels + "}", Values: fmt.Sprintf("%g %gx%d", b, a, steps)})
	}
	labels := map[string]string{"instance": instance}
	maps.Copy(labels, rule.Labels)
	ann, err := obsAnnotations(rule, labels, 0)
	if err != nil {
		return "", "", err
	}
	test := map[string]any{
		"rule_files":          []string{rules},
		"evaluation_interval": "1m",
		"tests": []map[string]any{{
			"name":         fmt.Sprintf("%s on %s's scraped samples", alert, instance),
			"interval":     "1m",
			"input_series": inputs,
			"alert_rule_test": []alertTest{
				{EvalTime: 0, Alertname: alert, ExpAlerts: []expAlert{}},
				{EvalTime: model.Duration(time.Minute) + rule.For, Alertname: alert, ExpAlerts: []expAlert{{ExpLabels: labels, ExpAnnotations: ann}}},
			},
		}},
	}
	b, err := yaml.Marshal(test)
	if err != nil {
		return "", "", err
	}
	path := filepath.Join(dir, "scraped_alert_test.yml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return "", "", err
	}
	out, err := exec.Command(promtool, "test", "rules", path).CombinedOutput()
	if err != nil {
		return string(b), string(out), fmt.Errorf("promtool test rules: %w", err)
	}
	return string(b), string(out), nil
}

// TestOBSParse parses what the daemon's metrics handler serves.
func TestOBSParse(t *testing.T) {
	m := metrics.New("test")
	m.SetNHSs(map[string]bool{"198.51.100.1": true, "198.51.100.254": false}, nil)
	m.SetSAs(map[string]int{"established": 2})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	got, err := obsParse(rec.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	want := obsSamples{
		obsSeries("dmvpnd_nhrp_nhs_up", "nhs", "198.51.100.1"):   1,
		obsSeries("dmvpnd_nhrp_nhs_up", "nhs", "198.51.100.254"): 0,
		obsSeries("dmvpnd_ipsec_sas", "state", "established"):    2,
		obsSeries("dmvpnd_ipsec_sas", "state", "down"):           0,
		obsSeries("dmvpnd_build_info", "version", "test"):        1,
	}
	if diff := cmp.Diff(want, got.pick(want)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, ok := got["dmvpnd_controller_loop_latency_seconds"]; ok {
		t.Errorf("a histogram was taken as one value")
	}
}

// TestOBSPromtoolAlert: the shipped spoke-not-registered rule fires on
// samples whose registration dropped, and the check fails when it did not
// drop (or the series is missing).
func TestOBSPromtoolAlert(t *testing.T) {
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Skip("promtool not installed (make deps)")
	}
	up := obsSeries("dmvpnd_nhrp_nhs_up", "nhs", "198.51.100.1")
	before := obsSamples{up: 1, "dmvpnd_ready": 1}
	for _, tc := range []struct {
		name  string
		after obsSamples
		fires bool
	}{
		{"dropped", obsSamples{up: 0}, true},
		{"still registered", obsSamples{up: 1}, false},
		{"series gone", obsSamples{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file, out, err := obsPromtoolAlert(t.TempDir(), "DMVPNSpokeNotRegistered", "dmvpnd_nhrp_nhs_up", "s1", before, tc.after)
			if (err == nil) != tc.fires {
				t.Errorf("err = %v, want fires=%t\n%s\n%s", err, tc.fires, file, out)
			}
		})
	}
}
