package bitnames

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNames(t *testing.T) {
	table := []struct {
		Mask uint16
		Name string
	}{{0x8000, "high"}, {0x0001, "low"}, {0x0030, "pair"}}
	for _, tc := range []struct {
		v     uint16
		names []string
		rest  uint16
	}{
		{0, nil, 0},
		{0x8001, []string{"high", "low"}, 0},
		{0x0001 | 0x8000 | 0x0400, []string{"high", "low"}, 0x0400},
		{0x0010, []string{"pair"}, 0}, // any bit of a group names it
		{0x0c00, nil, 0x0c00},
	} {
		names, rest := Names(tc.v, table)
		if diff := cmp.Diff(tc.names, names); diff != "" || rest != tc.rest {
			t.Errorf("Names(%#04x): rest %#04x, want %#04x; names (-want +got):\n%s", tc.v, rest, tc.rest, diff)
		}
	}
}
