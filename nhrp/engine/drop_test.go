package engine_test

import (
	"regexp"
	"testing"

	"github.com/dmvpnd/dmvpnd/nhrp/engine"
)

// Every drop reason has its own lower-case name, usable as a metrics label
// and, after "drop_", as the counter name.
func TestDropReasonsNamedOnce(t *testing.T) {
	all := engine.AllDropReasons()
	if len(all) < 30 || all[0] != engine.DropMalformed {
		t.Fatalf("AllDropReasons = %v", all)
	}
	label := regexp.MustCompile(`^[a-z][a-z_]*$`)
	seen := map[string]engine.DropReason{}
	for _, r := range all {
		name := r.String()
		if !label.MatchString(name) {
			t.Errorf("reason %d named %q", r, name)
		}
		if prev, dup := seen[name]; dup {
			t.Errorf("reasons %d and %d share the name %q", prev, r, name)
		}
		seen[name] = r
		if r.Counter() != "drop_"+name {
			t.Errorf("%v.Counter() = %q", r, r.Counter())
		}
	}
	if got := engine.DropReason(0).String(); got != "reason_0" {
		t.Errorf("zero reason named %q", got)
	}
}
