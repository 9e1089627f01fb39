package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/e2e/internal/benchreport"
)

func TestBLParseSample(t *testing.T) {
	// Two pids: a command name with a space and a parenthesis, as
	// /proc/PID/stat may carry.
	out := strings.Join([]string{
		"1764662400000000000",
		"stat 812 (dmvpnd) S 1 812 812 0 -1 4194560 3305 0 0 0 150 70 0 0 20 0 9 0 1234 1300000000 10240 18446744073709551615",
		"rss 41000",
		"anon 39000",
		"file 2000",
		"thp 2048",
		`gomem {"Alloc":1,"TotalAlloc":5000,"Mallocs":70,"HeapReleased":4096,"NumGC":3,"BySize":[{"Size":0}]}`,
		"stat 900 (odd) name) S 1 900 900 0 -1 4194560 3305 0 0 0 5 6 0 0 20 0 9 0 1234 1300000000 10240 18446744073709551615",
		"rss 1000",
		"anon 600",
		"file 400",
	}, "\n")
	got, err := blParseSample(out, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := blSample{at: time.Unix(0, 1764662400000000000), ticks: 150 + 70 + 5 + 6, rss: 42000 << 10, anon: 39600 << 10, file: 2400 << 10,
		thp: 2048 << 10, gomem: &blGoMem{TotalAlloc: 5000, Mallocs: 70, HeapReleased: 4096, NumGC: 3}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(blSample{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// A pid gone: its lines are missing, which is an error, not zero.
	if _, err := blParseSample(strings.Join(strings.Split(out, "\n")[:7], "\n"), 2); err == nil {
		t.Error("a missing pid parsed without error")
	}
}

// The idle window's script samples a live process at the start, every
// step and at the end of the window, on time.
func TestBLIdleScript(t *testing.T) {
	if _, err := os.Stat("/proc/self/smaps_rollup"); err != nil {
		t.Skip("no /proc/PID/smaps_rollup here")
	}
	window, step := 900*time.Millisecond, 400*time.Millisecond
	if got := blIdleSteps(window, step); got != 3 {
		t.Errorf("blIdleSteps(%v, %v) = %d, want 3 (0.4, 0.8, 0.9 s)", window, step, got)
	}
	out, err := exec.Command("sh", "-c", blIdleScript([]int{os.Getpid()}, window, step, "")).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	ss, err := blParseSamples(string(out), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 4 {
		t.Fatalf("%d samples, want 4:\n%s", len(ss), out)
	}
	if d := ss[3].at.Sub(ss[0].at); d < window || d > window+time.Second {
		t.Errorf("samples span %v, want %v", d, window)
	}
	for i, s := range ss {
		if s.rss <= 0 || s.anon <= 0 || s.gomem != nil {
			t.Errorf("sample %d: %+v", i, s)
		}
	}
}

// The refresh script samples a live process before the first window and
// after each; a flood's result between two samples is that window's.
func TestBLRefreshScript(t *testing.T) {
	if _, err := os.Stat("/proc/self/smaps_rollup"); err != nil {
		t.Skip("no /proc/PID/smaps_rollup here")
	}
	flood := `sleep 0.2; echo '{"spokes": 5, "sent": 5, "success": 4, "lost": 1}'`
	out, err := exec.Command("sh", "-c", blRefreshScript([]int{os.Getpid()}, flood, 3)).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	ss, fs, err := blParseRefresh(string(out), 1, 3)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(ss) != 4 || len(fs) != 3 {
		t.Fatalf("%d samples and %d floods, want 4 and 3:\n%s", len(ss), len(fs), out)
	}
	for i, f := range fs {
		if d := ss[i+1].at.Sub(ss[i].at); d < 200*time.Millisecond {
			t.Errorf("window %d lasted %v, shorter than its flood", i, d)
		}
		if f.Success != 4 || f.Lost != 1 {
			t.Errorf("window %d: %+v", i, f)
		}
	}
	if _, _, err := blParseRefresh(string(out), 1, 2); err == nil {
		t.Error("three windows' output parsed as two")
	}
}

// TestBLPinScript pins two processes, one of them a Go program with
// several threads, and reads every thread's CPU list back.
func TestBLPinScript(t *testing.T) {
	if os.Getenv("DMVPND_BL_PIN_HELPER") == "1" {
		time.Sleep(time.Minute) // a process to pin; killed by the test
		return
	}
	if runtime.NumCPU() < 2 {
		t.Skip("one CPU: pinning to CPU 0 changes nothing to see")
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		t.Skip("no taskset here")
	}
	var pids []int
	for _, argv := range [][]string{{os.Args[0], "-test.run=^TestBLPinScript$"}, {"sleep", "60"}} {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "DMVPND_BL_PIN_HELPER=1")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		pids = append(pids, cmd.Process.Pid)
	}
	// The Go helper has several threads once its runtime is up.
	deadline := time.Now().Add(10 * time.Second)
	for {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pids[0]))
		if len(tasks) > 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("helper %d still has %d threads", pids[0], len(tasks))
		}
		time.Sleep(10 * time.Millisecond)
	}
	allowed := func() map[string]string {
		got := map[string]string{}
		for _, p := range pids {
			tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", p))
			for _, task := range tasks {
				b, err := os.ReadFile(task + "/status")
				if err != nil {
					t.Fatal(err)
				}
				for l := range strings.Lines(string(b)) {
					if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
						got[task] = strings.TrimSpace(v)
					}
				}
			}
		}
		return got
	}
	for task, cpus := range allowed() {
		if cpus == "0" {
			t.Fatalf("%s already on CPU 0 alone: the test would prove nothing", task)
		}
	}
	if out, err := exec.Command("sh", "-c", blPinScript(pids, 0)).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	got := allowed()
	if len(got) < 3 {
		t.Fatalf("%d threads read, want the helper's several and sleep's", len(got))
	}
	for task, cpus := range got {
		if cpus != "0" {
			t.Errorf("%s: CPUs %s after pinning to 0", task, cpus)
		}
	}
}

func TestBLIdleStep(t *testing.T) {
	for window, want := range map[time.Duration]time.Duration{10 * time.Minute: 50 * time.Second, 2 * time.Minute: 10 * time.Second, 15 * time.Second: 5 * time.Second} {
		if got := blIdleStep(window); got != want {
			t.Errorf("blIdleStep(%v) = %v, want %v", window, got, want)
		}
	}
}

func TestBLSampleScript(t *testing.T) {
	got := blSampleScript([]int{7})
	for _, want := range []string{"date +%s%N", "/proc/7/stat", "/proc/7/status", "VmRSS:", "/proc/7/smaps_rollup"} {
		if !strings.Contains(got, want) {
			t.Errorf("script %q lacks %q", got, want)
		}
	}
}

func TestBLMisAcked(t *testing.T) {
	a := netip.MustParseAddr
	acked := map[netip.Addr]netip.Addr{
		a("10.0.1.0"): a("100.64.1.0"), // held
		a("10.0.1.1"): a("100.64.1.1"), // held with another NBMA
		a("10.0.1.2"): a("100.64.1.2"), // absent
		a("10.0.1.3"): a("100.64.1.3"), // entry without lladdr
	}
	table := map[netip.Addr]netip.Addr{
		a("10.0.1.0"): a("100.64.1.0"),
		a("10.0.1.1"): a("100.64.9.9"),
		a("10.0.1.3"): {},
		a("10.0.1.9"): a("100.64.1.9"), // not acked: not counted
	}
	if got := blMisAcked(acked, table); got != 3 {
		t.Errorf("blMisAcked = %d, want 3", got)
	}
}

func TestBLFloorBatch(t *testing.T) {
	got := blFloorBatch(2, netip.MustParseAddr("10.0.1.255"), netip.MustParseAddr("100.64.1.255"))
	want := "neigh add 10.0.1.255 lladdr 100.64.1.255 dev gre1 nud permanent\nneigh add 10.0.2.0 lladdr 100.64.2.0 dev gre1 nud permanent\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestBLCounters(t *testing.T) {
	before := blParseCounters("IpInReceives 10 0.0\nIpInDiscards 0 0.0\nsoftnet 00000001\nsoftnet 00000000\n")
	after := blParseCounters("IpInReceives 25 0.0\nIpInDiscards 0 0.0\nsoftnet 0000000a\nsoftnet 00000001\n")
	want := map[string]int64{"IpInReceives": 25, "IpInDiscards": 0, "SoftnetDropped": 11}
	if diff := cmp.Diff(want, after); diff != "" {
		t.Errorf("blParseCounters (-want +got):\n%s", diff)
	}
	if got, want := blCounterDelta(before, after, "Receives", "Drop", "Discard"), "IpInReceives +15, SoftnetDropped +10"; got != want {
		t.Errorf("blCounterDelta = %q, want %q", got, want)
	}
}

// The guest scripts are at least valid shell.
func TestBLScriptsParse(t *testing.T) {
	for name, script := range map[string]string{
		"quiet":    blQuietScript("! true", 2),
		"sample":   blSampleScript([]int{1, 2}),
		"idle":     blIdleScript([]int{1, 2}, time.Minute, 5*time.Second, blGoMemScript(blPprofAddr)),
		"counters": blCountersScript,
	} {
		if out, err := exec.Command("sh", "-n", "-c", script).CombinedOutput(); err != nil {
			t.Errorf("%s: sh -n: %v\n%s", name, err, out)
		}
	}
}

func TestBLSocketDrops(t *testing.T) {
	// ss -0 -m -n -p -H as iproute2 6.1 prints it: dmvpnd's NHRP socket
	// on gre1, its multicast socket (another protocol), FRR's nhrpd, and
	// another process's NHRP socket.
	out := strings.Join([]string{
		`p_dgr 8320   0      [8193]:gre1 * users:(("dmvpnd",pid=812,fd=9)) skmem:(r8320,rb16777216,t0,tb212992,f0,w0,o0,bl0,d190)`,
		`p_dgr 0      0      [2048]:gre1 * users:(("dmvpnd",pid=812,fd=11)) skmem:(r0,rb212992,t0,tb212992,f0,w0,o0,bl0,d7)`,
		`p_dgr 0      0      [8193]:gre1 * users:(("nhrpd",pid=900,fd=12)) skmem:(r0,rb212992,t0,tb212992,f0,w0,o0,bl0,d5)`,
		`p_dgr 0      0      [8193]:gre1 * users:(("other",pid=8120,fd=3)) skmem:(r0,rb212992,t0,tb212992,f0,w0,o0,bl0,d1000)`,
	}, "\n")
	for _, tc := range []struct {
		pids   []int
		want   int64
		wantOK bool
	}{
		{[]int{812}, 190, true},
		{[]int{900, 901}, 5, true},
		{[]int{812, 900}, 195, true},
		{[]int{81}, 0, false},
	} {
		got, ok := blSocketDrops(out, tc.pids)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("pids %v: %d, %v; want %d, %v", tc.pids, got, ok, tc.want, tc.wantOK)
		}
	}
}

func TestBLAccount(t *testing.T) {
	// 12000 requests sent; the hub's IP layer got 11900 (100 lost on the
	// way, 90 of them in the softnet backlog); its socket dropped 700,
	// the engine 50 silently (60 nhrp_drop_ counts, 10 of them refusals
	// it answered); it answered 11140, of which the generator received
	// 11000 and its socket dropped 30.
	f := blFlood{Sent: 12000, Replies: 10990, ErrorInds: 10, RxDrops: 30}
	hub := map[string]int64{"IpInReceives": 11900, "IpOutRequests": 11140, "SoftnetDropped": 90}
	daemon := map[string]int64{"nhrp_drop_rate_limited": 45, "nhrp_drop_cache_full": 10, "nhrp_drop_malformed": 5, "nhrp_registrations_refused": 10, "nhrp_registrations_accepted": 11000}
	got := blAccount(f, hub, map[string]int64{}, 100, 800, daemon)
	want := benchreport.Account{
		Sent: 12000, Answered: 11000, HubReceived: 11900, HubSent: 11140,
		Transit: 100, SoftnetDrops: 90, SocketDrops: 700, EngineDrops: 50, Unaccounted: 10,
		GenRxDrops: 30, ReplyMissed: 110,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if lhs, rhs := got.Sent-got.Answered, got.Transit+got.SocketDrops+got.EngineDrops+got.Unaccounted+got.GenRxDrops+got.ReplyMissed; lhs != rhs {
		t.Errorf("sent - answered = %d, the places add up to %d", lhs, rhs)
	}
	// FRR: no daemon counters; a socket not found: both unknown, all in
	// unaccounted.
	got = blAccount(f, hub, nil, -1, -1, nil)
	if got.SocketDrops != -1 || got.EngineDrops != -1 || got.Unaccounted != 760 {
		t.Errorf("without socket and daemon counters: %+v", got)
	}
}

// TestBLFloorCPUPerEntry: the floor's CPU per entry comes from
// neighwatch's summary line (its exec_cpu_ns), in ms per entry.
func TestBLFloorCPUPerEntry(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "neighwatch.log")
	line := `{"reached_ns":{"10000":7000000000},"first_ns":1,"last_ns":7000000000,"count":10000,"exec_ns":1000,"exec_end_ns":6000000000,"exec_cpu_ns":2500000000,"overflows":0}`
	if err := os.WriteFile(log, []byte("ready\n"+line+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var ws blWatch
	if err := blLastJSON(log, &ws); err != nil {
		t.Fatal(err)
	}
	if got := blFloorCPUPerEntry(ws, 10000); got != 0.25 {
		t.Errorf("2.5 s of CPU for 10000 entries: %v ms per entry, want 0.25", got)
	}
	if got := blFloorCPUPerEntry(blWatch{}, 10000); got != 0 {
		t.Errorf("no CPU measured: %v ms per entry, want 0 (not measured)", got)
	}
}

// dmvpnd idles 10 min by default (issue 21's RSS flatness), FRR at most
// 15 s unless told otherwise.
func TestBLConfigIdle(t *testing.T) {
	for _, tc := range []struct {
		env           map[string]string
		idle, idleFRR time.Duration
	}{
		{nil, 10 * time.Minute, 15 * time.Second},
		{map[string]string{"DMVPND_BENCH_QUICK": "1"}, 15 * time.Second, 15 * time.Second},
		{map[string]string{"DMVPND_BENCH_IDLE": "10s"}, 10 * time.Second, 10 * time.Second},
		{map[string]string{"DMVPND_BENCH_IDLE": "120s"}, 2 * time.Minute, 15 * time.Second},
		{map[string]string{"DMVPND_BENCH_IDLE": "120s", "DMVPND_BENCH_IDLE_FRR": "5m"}, 2 * time.Minute, 5 * time.Minute},
	} {
		for _, k := range []string{"DMVPND_BENCH_QUICK", "DMVPND_BENCH_IDLE", "DMVPND_BENCH_IDLE_FRR", "DMVPND_BENCH_SIZES", "DMVPND_BENCH_REPS", "DMVPND_BENCH_P3_REPS", "DMVPND_BENCH_REFRESH", "DMVPND_BENCH_BUDGET", "DMVPND_BENCH_GOMAXPROCS", "DMVPND_BENCH_GODEBUG"} {
			t.Setenv(k, tc.env[k])
		}
		c, err := blConfigFromEnv()
		if err != nil {
			t.Fatalf("%v: %v", tc.env, err)
		}
		if c.idle != tc.idle || c.idleFRR != tc.idleFRR {
			t.Errorf("%v: idle %v, FRR %v; want %v, %v", tc.env, c.idle, c.idleFRR, tc.idle, tc.idleFRR)
		}
	}
	t.Setenv("DMVPND_BENCH_GODEBUG", "a=1; reboot")
	if _, err := blConfigFromEnv(); err == nil {
		t.Error("DMVPND_BENCH_GODEBUG with a shell command accepted")
	}
}
