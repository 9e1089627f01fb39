package e2e

// Helpers of TestBenchLab (make bench-lab). Names start with "bl".

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/e2e/internal/benchreport"
	"github.com/dmvpnd/dmvpnd/e2e/lab"
)

// blBuild builds dmvpnd, dmvpnctl, nhrpforge and neighwatch into dir.
// The bench builds its own copies (not the shared .cache/lab/bin of the
// other scenarios) so that what it measures is this tree's dmvpnd even
// while other checkouts run lab tests.
func blBuild(dir string) error {
	root, err := filepath.Abs("..")
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/dmvpnd", "./cmd/dmvpnctl", "./e2e/internal/nhrpforge", "./e2e/internal/neighwatch")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	return nil
}

// blSample is the hub daemons' CPU time and RSS at one instant of the
// guest's clock.
type blSample struct {
	at    time.Time
	ticks int64 // utime + stime of all pids, clock ticks
	rss   int64 // VmRSS of all pids, bytes
	// anon and file split rss: RssAnon (heap, stacks) and RssFile (the
	// binary's and libraries' pages), bytes.
	anon, file int64
	// thp is the part of anon in transparent huge pages (smaps_rollup
	// AnonHugePages), bytes.
	thp int64
	// gomem is the Go runtime's memory figures of the first pid (expvar
	// memstats: dmvpnd in profile mode), nil when not sampled.
	gomem *blGoMem
}

// blGoMem is the part of runtime.MemStats the idle window logs (expvar's
// /debug/vars "memstats", whose keys are the field names).
type blGoMem struct {
	TotalAlloc, Mallocs, Frees                            uint64
	HeapAlloc, HeapInuse, HeapIdle, HeapReleased, HeapSys uint64
	StackInuse, Sys, NextGC                               uint64
	NumGC, NumForcedGC                                    uint32
}

// blSampleScript prints the guest's realtime clock, then per pid its
// /proc stat line and VmRSS, all from one shell (builtins only).
func blSampleScript(pids []int) string {
	var b strings.Builder
	b.WriteString("date +%s%N")
	for _, p := range pids {
		fmt.Fprintf(&b, "; read -r l < /proc/%[1]d/stat && echo \"stat $l\"; while read -r k v u; do case $k in VmRSS:) echo \"rss $v\";; RssAnon:) echo \"anon $v\";; RssFile:) echo \"file $v\";; esac; done < /proc/%[1]d/status", p)
		fmt.Fprintf(&b, "; while read -r k v u; do case $k in AnonHugePages:) echo \"thp $v\";; esac; done < /proc/%d/smaps_rollup", p)
	}
	return b.String()
}

// blGoMemScript prints the Go memory figures a daemon serves on its
// expvar endpoint (http://ADDR/debug/vars) as one "gomem JSON" line.
func blGoMemScript(addr string) string {
	return fmt.Sprintf("; curl -sS --max-time 5 http://%s/debug/vars | sed -n 's/^\"memstats\": /gomem /p'", addr)
}

// blIdleScript samples (blSampleScript, then extra) at the window's
// start and every step until its end, on the guest's clock: the
// samples' outputs are separated by "---" lines.
func blIdleScript(pids []int, window, step time.Duration, extra string) string {
	sample := blSampleScript(pids) + extra
	return fmt.Sprintf(`t0=$(date +%%s%%N); %[1]s
for i in $(seq %[2]d); do
	t=$((t0 + i * %[3]d)); [ $t -gt $((t0 + %[4]d)) ] && t=$((t0 + %[4]d))
	d=$((t - $(date +%%s%%N))); [ $d -gt 0 ] && sleep $((d / 1000000000)).$(printf %%09d $((d %% 1000000000)))
	echo ---; %[1]s
done`, sample, blIdleSteps(window, step), step.Nanoseconds(), window.Nanoseconds())
}

// blIdleSteps is how many samples blIdleScript takes after the first.
func blIdleSteps(window, step time.Duration) int {
	if step <= 0 || step >= window {
		return 1
	}
	return int((window + step - 1) / step)
}

// blIdleStep is the idle window's sampling interval: a dozen samples,
// at least 5 s apart.
func blIdleStep(window time.Duration) time.Duration { return max(window/12, 5*time.Second) }

// blLogIdle logs the idle window's trajectory: per sample, the time since
// the start, RSS (anon, of which huge pages, file) and, when sampled, the
// Go runtime's bytes allocated since the start, heap in use, idle and
// released, and GCs since the start.
func blLogIdle(t testing.TB, impl string, ss []blSample) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "idle %s trajectory (t s: RSS KB, anon KB, of which THP KB, file KB", impl)
	if ss[0].gomem != nil {
		b.WriteString("; Go: allocated since start KB, mallocs since start, heap alloc/inuse/idle/released KB, next GC KB, GCs since start (forced)")
	}
	b.WriteString("):")
	for _, s := range ss {
		fmt.Fprintf(&b, "\n  %6.1f: %d, %d, %d, %d", s.at.Sub(ss[0].at).Seconds(), s.rss>>10, s.anon>>10, s.thp>>10, s.file>>10)
		if m, m0 := s.gomem, ss[0].gomem; m != nil && m0 != nil {
			fmt.Fprintf(&b, "; Go: %d, %d, %d/%d/%d/%d, %d, %d (%d)", (m.TotalAlloc-m0.TotalAlloc)>>10, m.Mallocs-m0.Mallocs,
				m.HeapAlloc>>10, m.HeapInuse>>10, m.HeapIdle>>10, m.HeapReleased>>10, m.NextGC>>10, m.NumGC-m0.NumGC, m.NumForcedGC-m0.NumForcedGC)
		}
	}
	t.Log(b.String())
}

// blParseSamples parses blIdleScript's output.
func blParseSamples(out string, npids int) ([]blSample, error) {
	var ss []blSample
	for part := range strings.SplitSeq(out, "---\n") {
		s, err := blParseSample(part, npids)
		if err != nil {
			return nil, fmt.Errorf("sample %d: %w", len(ss), err)
		}
		ss = append(ss, s)
	}
	if len(ss) < 2 {
		return nil, fmt.Errorf("%d samples, want 2 at least", len(ss))
	}
	return ss, nil
}

// blPinScript pins every thread of pids to one CPU (threads started
// later inherit it).
func blPinScript(pids []int, cpu int) string {
	cmds := make([]string, len(pids))
	for i, p := range pids {
		cmds[i] = fmt.Sprintf("taskset -a -p -c %d %d > /dev/null", cpu, p)
	}
	return strings.Join(cmds, " && ")
}

// blRefreshScript samples pids, then for each of windows runs flood and
// samples again: window i runs from sample i to sample i+1. The outputs
// are separated by "---" lines.
func blRefreshScript(pids []int, flood string, windows int) string {
	sample := blSampleScript(pids)
	return sample + strings.Repeat("; echo ---; "+flood+"; echo ---; "+sample, windows)
}

// blParseRefresh parses blRefreshScript's output: windows+1 samples and
// the windows' flood results.
func blParseRefresh(out string, npids, windows int) ([]blSample, []blFlood, error) {
	parts := strings.Split(out, "---\n")
	if len(parts) != 2*windows+1 {
		return nil, nil, fmt.Errorf("%d parts, want %d for %d windows", len(parts), 2*windows+1, windows)
	}
	var ss []blSample
	var fs []blFlood
	for i, p := range parts {
		if i%2 == 0 {
			s, err := blParseSample(p, npids)
			if err != nil {
				return nil, nil, fmt.Errorf("sample %d: %w", i/2, err)
			}
			ss = append(ss, s)
			continue
		}
		var f blFlood
		if err := json.Unmarshal([]byte(strings.TrimSpace(p)), &f); err != nil {
			return nil, nil, fmt.Errorf("window %d's flood: %w", i/2, err)
		}
		fs = append(fs, f)
	}
	return ss, fs, nil
}

// blParseSample parses blSampleScript's output.
func blParseSample(out string, npids int) (blSample, error) {
	var s blSample
	var stats, rsss int
	for i, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if i == 0 {
			ns, err := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
			if err != nil {
				return s, fmt.Errorf("sample: clock %q: %w", line, err)
			}
			s.at = time.Unix(0, ns)
			continue
		}
		kind, rest, _ := strings.Cut(line, " ")
		switch kind {
		case "stat":
			// Fields after the command name (which may hold spaces):
			// state is field 3, utime 14, stime 15.
			j := strings.LastIndexByte(rest, ')')
			f := strings.Fields(rest[j+1:])
			if j < 0 || len(f) < 13 {
				return s, fmt.Errorf("sample: stat %q", rest)
			}
			ut, err1 := strconv.ParseInt(f[11], 10, 64)
			st, err2 := strconv.ParseInt(f[12], 10, 64)
			if err1 != nil || err2 != nil {
				return s, fmt.Errorf("sample: stat %q", rest)
			}
			s.ticks += ut + st
			stats++
		case "rss":
			kb, err := strconv.ParseInt(rest, 10, 64)
			if err != nil {
				return s, fmt.Errorf("sample: rss %q", rest)
			}
			s.rss += kb << 10
			rsss++
		case "anon", "file", "thp":
			kb, err := strconv.ParseInt(rest, 10, 64)
			if err != nil {
				return s, fmt.Errorf("sample: %s %q", kind, rest)
			}
			switch kind {
			case "anon":
				s.anon += kb << 10
			case "file":
				s.file += kb << 10
			default:
				s.thp += kb << 10
			}
		case "gomem":
			var m blGoMem
			if err := json.Unmarshal([]byte(rest), &m); err != nil {
				return s, fmt.Errorf("sample: gomem: %w", err)
			}
			s.gomem = &m
		}
	}
	if stats != npids || rsss != npids {
		return s, fmt.Errorf("sample: %d stat and %d rss lines for %d pids (a daemon died?): %q", stats, rsss, npids, out)
	}
	return s, nil
}

// blTake samples pids in the guest.
func blTake(ctx context.Context, n *lab.Node, pids []int) (blSample, error) {
	res, err := n.Run(ctx, blSampleScript(pids))
	if err != nil {
		return blSample{}, err
	}
	return blParseSample(string(res.Stdout), len(pids))
}

// blFlood is nhrpforge flood's JSON summary (e2e/internal/nhrpforge/flood.go).
type blFlood struct {
	Spokes      int            `json:"spokes"`
	Sent        int            `json:"sent"`
	Retransmits int            `json:"retransmits"`
	Success     int            `json:"success"`
	Refused     int            `json:"refused"`
	Codes       map[string]int `json:"codes"`
	ErrorInds   int            `json:"error_indications"`
	Lost        int            `json:"lost"`
	Unanswered  int            `json:"unanswered"`
	Replies     int            `json:"replies"`
	Unmatched   int            `json:"unmatched"`
	StartNS     int64          `json:"start_ns"`
	LastSendNS  int64          `json:"last_send_ns"`
	LastOKNS    int64          `json:"last_success_ns"`
	EndNS       int64          `json:"end_ns"`
	SendErrors  int            `json:"send_errors"`
	RxDrops     int64          `json:"rx_drops"`
}

// blWatch is neighwatch's JSON summary (e2e/internal/neighwatch).
type blWatch struct {
	ReachedNS map[int]int64 `json:"reached_ns"`
	FirstNS   int64         `json:"first_ns"`
	LastNS    int64         `json:"last_ns"`
	Count     int           `json:"count"`
	ExecNS    int64         `json:"exec_ns"`
	ExecEndNS int64         `json:"exec_end_ns"`
	ExecCPUNS int64         `json:"exec_cpu_ns"`
	ExecErr   string        `json:"exec_error"`
	Overflows int           `json:"overflows"`
	TimedOut  bool          `json:"timed_out"`
}

// blFloorCPUPerEntry is the floor's CPU per kernel entry in ms: the
// utime+stime of the ip -batch that programmed n entries, beside which
// dmvpnd's CPU per registration is judged (0: not measured).
func blFloorCPUPerEntry(ws blWatch, n int) float64 {
	if n <= 0 {
		return 0
	}
	return float64(ws.ExecCPUNS) / 1e6 / float64(n)
}

// blLastJSON decodes the last line of a log file into v.
func blLastJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), v); err != nil {
		return fmt.Errorf("%s: last line: %w", path, err)
	}
	return nil
}

// blReadAcked reads flood's -acked file: tunnel address -> NBMA.
func blReadAcked(path string) (map[netip.Addr]netip.Addr, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[netip.Addr]netip.Addr{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		p, n, ok := strings.Cut(line, " ")
		pa, err1 := netip.ParseAddr(p)
		na, err2 := netip.ParseAddr(n)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%s: bad line %q", path, line)
		}
		out[pa] = na
	}
	return out, nil
}

// blMisAcked counts acknowledged registrations whose entry (tunnel
// address -> that NBMA) the kernel table does not hold.
func blMisAcked(acked, table map[netip.Addr]netip.Addr) int {
	n := 0
	for p, nbma := range acked {
		if got, ok := table[p]; !ok || got != nbma {
			n++
		}
	}
	return n
}

// blAddr is the IPv4 address i after a.
func blAddr(a netip.Addr, i int) netip.Addr {
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) + uint32(i)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// blFloorBatch renders the ip -batch input adding n permanent entries,
// spoke i's tunnel address to its NBMA address.
func blFloorBatch(n int, firstProto, firstNBMA netip.Addr) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "neigh add %s lladdr %s dev gre1 nud permanent\n", blAddr(firstProto, i), blAddr(firstNBMA, i))
	}
	return b.String()
}

// blEnvInts parses a comma-separated list of positive integers.
func blEnvInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: want positive integers, comma separated", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// blCountersScript prints the namespace's kernel counters (nstat -az:
// Ip, Udp, TcpExt, ...) and the guest's per-CPU softnet_stat lines.
const blCountersScript = "nstat -az 2>/dev/null | sed 1d; while read -r a d rest; do echo \"softnet $d\"; done < /proc/net/softnet_stat"

// blParseCounters parses blCountersScript's output: counter -> value;
// SoftnetDropped sums softnet_stat's second column (packets dropped
// because a CPU's input backlog was full).
func blParseCounters(out string) map[string]int64 {
	m := map[string]int64{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		if f[0] == "softnet" {
			v, err := strconv.ParseInt(f[1], 16, 64)
			if err == nil {
				m["SoftnetDropped"] += v
			}
			continue
		}
		if v, err := strconv.ParseInt(f[1], 10, 64); err == nil {
			m[f[0]] = v
		}
	}
	return m
}

// blCounterDelta renders the counters that changed between a and b,
// sorted, "Name +delta" separated by spaces; only names matching one of
// the substrings in keep.
func blCounterDelta(a, b map[string]int64, keep ...string) string {
	var out []string
	for k, v := range b {
		if d := v - a[k]; d != 0 && slices.ContainsFunc(keep, func(s string) bool { return strings.Contains(k, s) }) {
			out = append(out, fmt.Sprintf("%s %+d", k, d))
		}
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// blSocketsScript lists the namespace's packet sockets with their
// memory and drop counters and owning processes.
const blSocketsScript = "ss -0 -m -n -p -H"

// blSocketDrops sums the drop counters (skmem d: packets the kernel
// dropped because the receive buffer was full, since the socket was
// opened) of the NHRP packet sockets (protocol 0x2001 = 8193) owned by
// one of pids, from blSocketsScript's output; ok is false when none of
// them holds one.
func blSocketDrops(out string, pids []int) (drops int64, ok bool) {
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "p_dgr") || !strings.Contains(line, "[8193]:") {
			continue
		}
		if !slices.ContainsFunc(pids, func(p int) bool { return strings.Contains(line, fmt.Sprintf(",pid=%d,", p)) }) {
			continue
		}
		_, mem, found := strings.Cut(line, "skmem:(")
		if !found {
			continue
		}
		mem, _, _ = strings.Cut(mem, ")")
		for _, f := range strings.Split(mem, ",") {
			if v, isDrops := strings.CutPrefix(f, "d"); isDrops {
				if d, err := strconv.ParseInt(v, 10, 64); err == nil {
					drops, ok = drops+d, true
				}
			}
		}
	}
	return drops, ok
}

// blDelta is b - a per counter; nil when b is.
func blDelta(a, b map[string]int64) map[string]int64 {
	if b == nil {
		return nil
	}
	d := make(map[string]int64, len(b))
	for k, v := range b {
		d[k] = v - a[k]
	}
	return d
}

// blAccount says where a burst's requests went, from the generator's
// summary, the deltas over the burst of the hub's and the generator's
// kernel counters (nstat, softnet), the drop counter of the hub's NHRP
// socket before and after (-1: unknown) and the delta of dmvpnd's
// counters (nil for FRR, which has no drop counters). Every request
// sent is answered (the generator counts success and refusals) or
// missing at one of the places in benchreport.Account; what no counter
// explains is Unaccounted.
func blAccount(f blFlood, hub, gen map[string]int64, sock0, sock1 int64, daemon map[string]int64) benchreport.Account {
	a := benchreport.Account{
		Sent:         f.Sent,
		Answered:     f.Replies + f.ErrorInds,
		HubReceived:  int(hub["IpInReceives"]),
		HubSent:      int(hub["IpOutRequests"]),
		SoftnetDrops: int(hub["SoftnetDropped"]), // one guest: gen's figure is the same
		GenRxDrops:   int(f.RxDrops),
		SocketDrops:  -1,
		EngineDrops:  -1,
	}
	a.Transit = a.Sent - a.HubReceived
	a.ReplyMissed = a.HubSent - a.Answered - a.GenRxDrops
	rest := a.HubReceived - a.HubSent
	if sock0 >= 0 && sock1 >= 0 {
		a.SocketDrops = int(sock1 - sock0)
		rest -= a.SocketDrops
	}
	if daemon != nil {
		// Each refused CIE counts once in registrations_refused and once
		// in its drop_ reason, and is answered; a request without CIEs
		// dropped silently counts in its drop_ reason only.
		// `show counters` names the engine's counters nhrp_<name>.
		var drops int64
		for k, v := range daemon {
			if strings.HasPrefix(k, "nhrp_drop_") {
				drops += v
			}
		}
		a.EngineDrops = int(drops - daemon["nhrp_registrations_refused"])
		rest -= a.EngineDrops
	}
	a.Unaccounted = rest
	return a
}
