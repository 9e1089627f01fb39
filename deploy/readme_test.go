package deploy

import (
	"os"
	"strings"
	"testing"

	"github.com/dmvpnd/dmvpnd/controller/config"
)

// TestReferenceDocumentsEveryKey keeps the README's table in step with the
// schema in both directions.
func TestReferenceDocumentsEveryKey(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	restart := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "| `"); ok {
			key, _, _ := strings.Cut(rest, "`")
			documented[key] = true
			restart[key] = strings.HasSuffix(l, "(*restart*) |")
		}
	}
	for _, k := range config.Keys() {
		if !documented[k] {
			t.Errorf("README.md does not document %s", k)
		} else if want := config.RestartReason(k) != ""; restart[k] != want {
			t.Errorf("README.md marks %s restart=%v, config.Diff says %v", k, restart[k], want)
		}
		delete(documented, k)
	}
	for k := range documented {
		t.Errorf("README.md documents %s, which is not in the schema", k)
	}
}
