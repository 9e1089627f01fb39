package controller

// stats are the controller's own counters, shown next to the engine's by
// dmvpnctl show counters.
type stats map[string]uint64

func (s stats) inc(name string) { s[name]++ }

func (s stats) add(name string, n uint64) { s[name] += n }
