package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/dmvpnd/dmvpnd/controller/metrics"
)

// promtool finds promtool (Debian package prometheus, installed by make
// deps). Outside CI a machine without it skips; in CI (CI=true) its absence
// fails the test.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("promtool not installed (make deps installs the Debian package prometheus): %v", err)
		}
		t.Skip("promtool not installed: run make deps (Debian package prometheus) to check the alert rules")
	}
	return p
}

func TestAlertRulesCheck(t *testing.T) {
	out, err := exec.Command(promtool(t), "check", "rules", "prometheus/alerts.yml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

func TestAlertRulesUnit(t *testing.T) {
	cmd := exec.Command(promtool(t), "test", "rules", "alerts_test.yml")
	cmd.Dir = "prometheus"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

// TestAlertsCoverEveryRule: each alert has a unit test that expects it.
func TestAlertsCoverEveryRule(t *testing.T) {
	rules, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile("prometheus/alerts_test.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^\s*- alert: (\S+)`).FindAllStringSubmatch(string(rules), -1) {
		if !regexp.MustCompile(`alertname: ` + m[1] + `\s+exp_alerts:\s+- `).Match(tests) {
			t.Errorf("alert %s has no test expecting it to fire", m[1])
		}
	}
}

var metricRef = regexp.MustCompile(`\bdmvpnd_[a-z0-9_]+`)

// unknownMetrics lists the dmvpnd_ names in expr the daemon does not
// register (histogram series suffixes resolve to their family).
func unknownMetrics(expr string, known []string) []string {
	var bad []string
	for _, n := range metricRef.FindAllString(expr, -1) {
		base := n
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(n, suf); ok && slices.Contains(known, b) {
				base = b
			}
		}
		if !slices.Contains(known, base) {
			bad = append(bad, n)
		}
	}
	return bad
}

func TestAlertRulesUseRegisteredMetrics(t *testing.T) {
	known := metrics.New("test").Names()
	b, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if e, ok := strings.CutPrefix(strings.TrimSpace(l), "expr:"); ok {
			if bad := unknownMetrics(e, known); len(bad) > 0 {
				t.Errorf("alert expr %q uses unregistered metrics %v", e, bad)
			}
		}
	}
}

// TestDashboard loads the Grafana dashboard: it parses, has the three
// views, and every panel queries only metrics the daemon registers.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("prometheus/dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		ID      int    `json:"id"`
		Type    string `json:"type"`
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	}
	var d struct {
		Title  string  `json:"title"`
		UID    string  `json:"uid"`
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	known := metrics.New("test").Names()
	var rows []string
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d repeated", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			rows = append(rows, strings.Fields(p.Title)[0]+" "+strings.Fields(p.Title)[1])
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if !metricRef.MatchString(tg.Expr) {
				t.Errorf("panel %q: expr %q queries no dmvpnd metric", p.Title, tg.Expr)
			}
			if bad := unknownMetrics(tg.Expr, known); len(bad) > 0 {
				t.Errorf("panel %q: expr %q uses unregistered metrics %v", p.Title, tg.Expr, bad)
			}
		}
	}
	if want := []string{"Fleet overview", "Per hub", "Per spoke"}; !slices.Equal(rows, want) {
		t.Errorf("dashboard rows %v, want %v", rows, want)
	}
}
