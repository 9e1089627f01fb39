package engine_test

import (
	"testing"

	"github.com/dmvpnd/dmvpnd/nhrp/engine"
)

// Clearing shortcuts removes the route (ShortcutRemoved), the resolved peer
// and its neighbor entry; the registration with the hub stays.
func TestClearShortcuts(t *testing.T) {
	tp, s2, _ := phase3(t)
	if st := shortcutState(s2, "10.0.3.0/24"); st != engine.ShortcutUp {
		t.Fatalf("shortcut %v, want up before clearing", st)
	}
	if n := s2.Engine.ClearShortcuts(); n != 1 {
		t.Errorf("ClearShortcuts = %d, want 1", n)
	}
	tp.run()
	if st := shortcutState(s2, "10.0.3.0/24"); st != engine.ShortcutRemoved {
		t.Errorf("shortcut %v after clearing, want removed", st)
	}
	if _, ok := s2.Neigh.Lookup(addr("10.255.0.3")); ok {
		t.Errorf("neighbor entry for the cleared peer left behind:\n%s", s2.Neigh)
	}
	if n := s2.Engine.ClearShortcuts(); n != 0 {
		t.Errorf("second ClearShortcuts = %d, want 0", n)
	}
	for _, n := range s2.Engine.NHSs() {
		if n.State != engine.NHSUp {
			t.Errorf("NHS %v is %v after clearing shortcuts, want up", n.NBMA, n.State)
		}
	}
}

// Clearing the cache on the egress drops the requester it learnt, keeps
// its NHS, and reports the count.
func TestClearCache(t *testing.T) {
	_, _, s3 := phase3(t)
	if _, ok := cacheEntry(s3, "10.255.0.2", engine.KindRequester); !ok {
		t.Fatalf("egress has no requester entry to clear: %+v", s3.Engine.Cache())
	}
	if n := s3.Engine.ClearCache(); n < 1 {
		t.Errorf("ClearCache = %d, want >= 1", n)
	}
	if _, ok := cacheEntry(s3, "10.255.0.2", engine.KindRequester); ok {
		t.Errorf("requester entry survived ClearCache: %+v", s3.Engine.Cache())
	}
	nhs := 0
	for _, e := range s3.Engine.Cache() {
		if e.Kind == engine.KindNHS {
			nhs++
		}
	}
	if nhs == 0 {
		t.Errorf("ClearCache removed the NHS entry: %+v", s3.Engine.Cache())
	}
}

// Clearing one resolved peer removes it with its shortcut and neighbor
// entry, once; the NHS entry is not a resolved peer and stays.
func TestClearResolved(t *testing.T) {
	tp, s2, _ := phase3(t)
	if removed, n := s2.Engine.ClearResolved(addr("10.255.0.3")); !removed || n != 1 {
		t.Errorf("ClearResolved = %v, %d; want true, 1", removed, n)
	}
	tp.run()
	if st := shortcutState(s2, "10.0.3.0/24"); st != engine.ShortcutRemoved {
		t.Errorf("shortcut %v after clearing its peer, want removed", st)
	}
	if _, ok := s2.Neigh.Lookup(addr("10.255.0.3")); ok {
		t.Errorf("neighbor entry for the cleared peer left behind:\n%s", s2.Neigh)
	}
	if removed, _ := s2.Engine.ClearResolved(addr("10.255.0.3")); removed {
		t.Error("second ClearResolved removed something")
	}
	for _, n := range s2.Engine.NHSs() {
		if removed, _ := s2.Engine.ClearResolved(n.Proto); removed {
			t.Errorf("ClearResolved removed the NHS %v", n.Proto)
		}
	}
}
