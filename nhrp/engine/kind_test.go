package engine_test

import (
	"testing"

	"github.com/dmvpnd/dmvpnd/nhrp/engine"
)

func TestBindingKindPermanent(t *testing.T) {
	want := map[engine.BindingKind]bool{
		engine.KindRegistered: true, engine.KindNHS: true,
		engine.KindResolved: false, engine.KindRequester: false, engine.KindNegative: false, 0: false,
	}
	for k, w := range want {
		if got := k.Permanent(); got != w {
			t.Errorf("%v.Permanent() = %v, want %v", k, got, w)
		}
	}
}
