package kernel

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/dmvpnd/dmvpnd/nhrp/bitnames"
)

// NeighState is a kernel NUD_* state bit set.
type NeighState uint16

// Neighbor states (linux/neighbour.h).
const (
	NeighIncomplete NeighState = unix.NUD_INCOMPLETE
	NeighReachable  NeighState = unix.NUD_REACHABLE
	NeighStale      NeighState = unix.NUD_STALE
	NeighDelay      NeighState = unix.NUD_DELAY
	NeighProbe      NeighState = unix.NUD_PROBE
	NeighFailed     NeighState = unix.NUD_FAILED
	NeighNoARP      NeighState = unix.NUD_NOARP
	NeighPermanent  NeighState = unix.NUD_PERMANENT
)

var neighStateNames = []struct {
	Mask NeighState
	Name string
}{
	{NeighIncomplete, "INCOMPLETE"},
	{NeighReachable, "REACHABLE"},
	{NeighStale, "STALE"},
	{NeighDelay, "DELAY"},
	{NeighProbe, "PROBE"},
	{NeighFailed, "FAILED"},
	{NeighNoARP, "NOARP"},
	{NeighPermanent, "PERMANENT"},
}

// String renders the state as iproute2 does ("REACHABLE", "NONE").
func (s NeighState) String() string {
	if s == 0 {
		return "NONE"
	}
	parts, rest := bitnames.Names(s, neighStateNames)
	if rest != 0 {
		parts = append(parts, fmt.Sprintf("0x%x", uint16(rest)))
	}
	return strings.Join(parts, "|")
}

// MarshalText makes states readable in JSON output.
func (s NeighState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// isMissState reports whether the kernel asks for resolution in this state.
func isMissState(s NeighState) bool { return s&(NeighIncomplete|NeighProbe) != 0 }
