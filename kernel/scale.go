package kernel

import (
	"fmt"
	"strconv"
)

// Neighbor table sizing. The IPv4 neighbor table is shared by every device
// (underlay ARP entries count too) and by default refuses new dynamic entries
// beyond gc_thresh3=1024. Permanent entries are exempt from the limit, dynamic
// (REACHABLE) ones are not.
const (
	gcHeadroom = 1024 // room for underlay ARP and transient entries
)

// gcThresholds returns gc_thresh1..3 for a peer limit: below thresh1 no
// garbage collection runs at all, thresh2 is the soft and thresh3 the hard
// limit.
func gcThresholds(peers int) [3]int {
	if peers < 0 {
		peers = 0
	}
	t1 := peers + gcHeadroom
	return [3]int{t1, 2 * t1, 4 * t1}
}

// SizeNeighborTable raises net.ipv4.neigh.default.gc_thresh1..3 so that the
// table holds at least peers entries. It never lowers a value an
// administrator set higher. The table is global and its gc_thresh sysctls
// exist only in the initial network namespace: pass a writer for that one.
func SizeNeighborTable(w SysctlWriter, peers int) error {
	want := gcThresholds(peers)
	for i, v := range want {
		key := fmt.Sprintf("net/ipv4/neigh/default/gc_thresh%d", i+1)
		cur, err := w.ReadSysctl(key)
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(cur)
		if err != nil {
			return fmt.Errorf("kernel: sysctl %s: unexpected value %q", key, cur)
		}
		if n >= v {
			continue
		}
		if err := w.WriteSysctl(key, strconv.Itoa(v)); err != nil {
			return err
		}
	}
	return nil
}
