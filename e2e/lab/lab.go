package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/dmvpnd/dmvpnd/e2e/lab/agent"
)

// Options configure New. The zero value is a good default.
type Options struct {
	// Mode is "vm", "native" or "" (auto: env DMVPND_LAB, else native when
	// the host kernel has ip_gre and esp4 and we are root, else vm).
	Mode string
	// Accel is the qemu accelerator: "tcg" (default), "kvm", or "auto" (try
	// KVM with a short boot deadline, fall back to TCG). Env DMVPND_LAB_ACCEL.
	Accel string
	// MemoryMB and CPUs size the guest; defaults 2048 and 2.
	MemoryMB, CPUs int
	// BootTimeout bounds the boot until the agent answers; default 120 s.
	BootTimeout time.Duration
	// StepTimeout bounds each MustRun and each setup step; default 60 s.
	StepTimeout time.Duration
	// ResultsDir receives logs, pcaps, dumps and the console. Default: a
	// new MODULE/.cache/lab/runs/TEST_NAME-TIME-PID, with the symlink
	// runs/TEST_NAME.latest pointing at it; older runs of the same test
	// beyond the last keepRuns are removed. In VM mode it is shared
	// writable and mounted at the same path inside the guest.
	ResultsDir string
	// Modules are modprobed right after boot; default DefaultModules.
	Modules []string
	// NoWarmup skips the ESP crypto warm-up that VM labs do after boot.
	NoWarmup bool
	// Logger receives lab progress; default zaptest's logger on t.
	Logger *zap.Logger
	// HostNICs are guest network cards through which the host reaches
	// nodes (see HostNIC); VM mode only.
	HostNICs []HostNIC
}

// DefaultModules are loaded before a scenario: GRE, ESP and what
// the topology and captures use. Loading them up front keeps the kernel's
// autoloader out of the timed parts of a scenario.
var DefaultModules = []string{
	"ip_gre", "esp4", "xfrm_user", "xfrm_algo", "veth", "bridge", "dummy",
	"af_packet", "nf_tables", "nft_masq", "nft_chain_nat", "nf_nat",
	"gcm", "ghash_generic", "ghash_clmulni_intel", "aesni_intel", "cryptd", "crypto_simd",
	"ctr", "seqiv", "authenc", "echainiv",
	// The ESP IV generator's DRBG and what it seeds from.
	"drbg", "jitterentropy_rng", "sha512_generic", "sha512_ssse3", "sha3_generic",
}

// espWarmup instantiates the ESP AEAD once in a throw-away namespace. The
// first ESP SA after boot otherwise waits seconds for the kernel's crypto
// lookups, each of which runs modprobe (slow under emulation) even for
// template instances no module provides. With every module loaded up front,
// the lookups are answered from memory; so the warm-up runs with module
// autoloading off, and again with it on should that fail.
const espWarmup = `ip netns add lab-warmup || exit 1
trap 'ip netns del lab-warmup' EXIT
add() { ip -n lab-warmup xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x1 mode transport aead 'rfc4106(gcm(aes))' 0x0102030405060708091011121314151617181920 128; }
mp=$(cat /proc/sys/kernel/modprobe)
echo > /proc/sys/kernel/modprobe
add 2>/dev/null; st=$?
echo "$mp" > /proc/sys/kernel/modprobe
[ $st = 0 ] || add`

// Lab is one booted lab: a guest (or the host in native mode), a results
// directory and, once Build was called, a topology.
type Lab struct {
	t       testing.TB
	opts    Options
	runner  Runner
	log     *zap.Logger
	dir     string // results dir (same path in host and guest)
	scratch string // private runtime dir for sockets (guest tmpfs or host temp)
	root    string // module root (for go builds)

	logMu sync.Mutex // serialises commands.log writes

	mu    sync.Mutex
	topo  *Topology
	procs []*Proc
	// hostNICs are Options.HostNICs with their host ports.
	hostNICs []hostNIC
	// Timings records how long boot and setup steps took.
	Timings map[string]time.Duration
}

// Enabled reports whether lab tests were asked for (DMVPND_LAB_TESTS=1).
func Enabled() bool { return os.Getenv("DMVPND_LAB_TESTS") == "1" }

// New boots a lab for t, or skips t unless DMVPND_LAB_TESTS=1. Everything
// it starts is stopped in t.Cleanup; when t failed, Dump runs first and the
// paths of the collected state are logged.
func New(t testing.TB, opts Options) *Lab {
	t.Helper()
	if !Enabled() {
		t.Skip("lab tests are off: set DMVPND_LAB_TESTS=1 (make test-lab)")
	}
	l, err := newLab(t, opts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (o Options) withDefaults() Options {
	if o.MemoryMB == 0 {
		o.MemoryMB = 2048
	}
	if o.CPUs == 0 {
		o.CPUs = 2
	}
	if o.BootTimeout == 0 {
		o.BootTimeout = 120 * time.Second
	}
	if o.StepTimeout == 0 {
		o.StepTimeout = 60 * time.Second
	}
	if o.Modules == nil {
		o.Modules = DefaultModules
	}
	if o.Accel == "" {
		o.Accel = os.Getenv("DMVPND_LAB_ACCEL")
	}
	return o
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// keepRuns is how many result directories of one test are kept.
const keepRuns = 5

var runSeq atomic.Int64

// cacheDir is root's .cache with symlinks resolved: the guest's initramfs
// bind-mounts the kernel modules and mounts the results share at these
// paths before switch_root, where an absolute symlink (a worktree's
// .cache -> /work/main/.cache) would point outside the host root.
func cacheDir(root string) string {
	dir := filepath.Join(root, ".cache")
	if r, err := filepath.EvalSymlinks(dir); err == nil {
		return r
	}
	return dir
}

// newRunDir creates a fresh results directory for test under runs. Runs of
// the same test in parallel processes get distinct directories.
func newRunDir(runs, test string, now time.Time) (string, error) {
	name := unsafeName.ReplaceAllString(test, "_")
	if err := os.MkdirAll(runs, 0o755); err != nil {
		return "", fmt.Errorf("lab: %w", err)
	}
	old, _ := filepath.Glob(filepath.Join(runs, name+"-2*"))
	sort.Strings(old) // names start with a sortable timestamp
	for len(old) >= keepRuns {
		_ = os.RemoveAll(old[0])
		old = old[1:]
	}
	dir := filepath.Join(runs, fmt.Sprintf("%s-%s-%d-%d", name, now.UTC().Format("20060102T150405"), os.Getpid(), runSeq.Add(1)))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("lab: %w", err)
	}
	latest := filepath.Join(runs, name+".latest")
	_ = os.Remove(latest)
	_ = os.Symlink(filepath.Base(dir), latest)
	return dir, nil
}

func newLab(t testing.TB, opts Options) (*Lab, error) {
	opts = opts.withDefaults()
	log := opts.Logger
	if log == nil {
		log = zaptest.NewLogger(t)
	}
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	l := &Lab{t: t, opts: opts, log: log, root: root, Timings: map[string]time.Duration{}}
	l.dir = opts.ResultsDir
	if l.dir == "" {
		if l.dir, err = newRunDir(filepath.Join(cacheDir(root), "lab", "runs"), t.Name(), time.Now()); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(l.dir, 0o755); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	t.Logf("lab: results in %s", l.dir)

	mode, why, err := chooseMode(opts.Mode, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return probeNative(ctx)
	})
	if err != nil {
		return nil, err
	}
	log.Info("lab mode", zap.String("mode", string(mode)), zap.String("why", why))

	start := time.Now()
	switch mode {
	case ModeNative:
		if len(opts.HostNICs) > 0 {
			return nil, fmt.Errorf("lab: host NICs need VM mode")
		}
		if os.Geteuid() != 0 {
			return nil, fmt.Errorf("lab: native mode needs root")
		}
		l.runner = nativeRunner{}
		if l.scratch, err = os.MkdirTemp("", "lab"); err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
	case ModeVM:
		if l.hostNICs, err = hostNICs(opts.HostNICs); err != nil {
			return nil, err
		}
		if l.runner, err = l.bootVM(); err != nil {
			return nil, err
		}
		l.scratch = "/tmp/lab"
	}
	// Cleanup order is LIFO: registered first, runs last.
	t.Cleanup(l.close)
	t.Cleanup(func() {
		if t.Failed() {
			l.DumpOnFailure()
		}
	})
	l.Timings["boot"] = time.Since(start)
	t.Logf("lab: %s mode ready in %v (%s)", mode, l.Timings["boot"].Round(time.Millisecond), why)

	ctx, cancel := l.stepContext()
	defer cancel()
	if _, err := l.Run(ctx, "mkdir -p "+shellQuote(l.scratch)); err != nil {
		return nil, err
	}
	modules := opts.Modules
	if len(l.hostNICs) > 0 {
		modules = append(slices.Clip(modules), "virtio_net")
	}
	if len(modules) > 0 {
		start := time.Now()
		// One modprobe for all; modules that do not exist (built in) are not an error.
		if _, err := l.Exec(ctx, "modprobe -qa "+strings.Join(modules, " ")); err != nil {
			return nil, err
		}
		l.Timings["modprobe"] = time.Since(start)
	}
	if mode == ModeVM && !opts.NoWarmup {
		start := time.Now()
		if _, err := l.Run(ctx, espWarmup); err != nil {
			return nil, fmt.Errorf("lab: ESP warm-up: %w", err)
		}
		l.Timings["esp-warmup"] = time.Since(start)
	}
	return l, nil
}

// qbootROM is the minimal firmware Debian's qemu-system-x86 ships.
const qbootROM = "/usr/share/qemu/qboot.rom"

// bootVM builds the initramfs and the agent and boots the guest.
func (l *Lab) bootVM() (Runner, error) {
	cache := cacheDir(l.root)
	k, err := FindKernel(cache)
	if err != nil {
		return nil, err
	}
	initrd, err := Initramfs(cache, k, "/bin/busybox")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.opts.BootTimeout)
	defer cancel()
	agentBin := filepath.Join(l.dir, "labagent")
	t0 := time.Now()
	if err := agentOnce.get(ctx, l.root, agentBin); err != nil {
		return nil, err
	}
	l.Timings["build-agent"] = time.Since(t0)
	cfg := vmConfig{
		Kernel: k, Initramfs: initrd, Accel: "tcg",
		MemoryMB: l.opts.MemoryMB, CPUs: l.opts.CPUs,
		ResultsDir: l.dir, Agent: agentBin,
		Console: filepath.Join(l.dir, "console.log"),
		// For debugging the boot, e.g. DMVPND_LAB_KERNEL_ARGS="loglevel=7".
		ExtraArgs: strings.Fields(os.Getenv("DMVPND_LAB_KERNEL_ARGS")),
		NICs:      l.hostNICs,
	}
	// An uncompressed kernel booted through its PVH entry saves the xz
	// decompression; the bzImage is the fallback.
	if vmlinux, err := PVHKernel(cache, k); err == nil {
		cfg.Kernel.Image = vmlinux
	} else {
		l.log.Info("no PVH kernel; booting the bzImage", zap.Error(err))
	}
	// qboot starts a -kernel guest much faster than SeaBIOS.
	if _, err := os.Stat(qbootROM); err == nil {
		cfg.BIOS = qbootROM
	}
	switch l.opts.Accel {
	case "", "tcg":
	case "kvm":
		cfg.Accel = "kvm"
	case "auto":
		if kvmUsable() {
			kctx, kcancel := context.WithTimeout(ctx, 20*time.Second)
			kcfg := cfg
			kcfg.Accel = "kvm"
			v, err := startVM(kctx, kcfg, l.log)
			kcancel()
			if err == nil {
				return vmRunner{v}, nil
			}
			l.log.Info("KVM trial failed; using TCG", zap.Error(err))
		}
	default:
		return nil, fmt.Errorf("lab: unknown accelerator %q (want tcg, kvm or auto)", l.opts.Accel)
	}
	t0 = time.Now()
	v, err := startVM(ctx, cfg, l.log)
	if err != nil {
		return nil, err
	}
	l.Timings["qemu-boot"] = time.Since(t0)
	return vmRunner{v}, nil
}

func (l *Lab) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l.mu.Lock()
	procs := append([]*Proc(nil), l.procs...)
	topo := l.topo
	l.mu.Unlock()
	if l.runner.Mode() == ModeNative {
		// The guest dies with qemu; on the host, clean up what we made.
		for i := len(procs) - 1; i >= 0; i-- {
			_ = procs[i].Stop(ctx)
		}
		if topo != nil {
			for _, ns := range topo.Namespaces() {
				_, _ = l.Exec(ctx, "ip netns del "+ns)
			}
		}
		os.RemoveAll(l.scratch)
	}
	_ = l.runner.Close()
}

// stepContext bounds one setup step by Options.StepTimeout.
func (l *Lab) stepContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), l.opts.StepTimeout)
}

// Mode reports where the lab runs.
func (l *Lab) Mode() Mode { return l.runner.Mode() }

// Dir is the results directory: the same path on the host and in the guest.
func (l *Lab) Dir() string { return l.dir }

// Scratch is a private directory for runtime state (sockets, pid files) on
// a local filesystem where the lab's commands run.
func (l *Lab) Scratch() string { return l.scratch }

// Result is a finished command.
type Result = agent.Response

// CommandError is returned by Run when a command exits non-zero.
type CommandError struct {
	Cmd    string
	Result Result
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("lab: %q exited %d%s\nstdout: %s\nstderr: %s", e.Cmd, e.Result.Exit,
		map[bool]string{true: " (" + e.Result.Err + ")", false: ""}[e.Result.Err != ""],
		strings.TrimSpace(string(e.Result.Stdout)), strings.TrimSpace(string(e.Result.Stderr)))
}

// Exec runs cmd with /bin/sh -c where the lab lives and returns its result
// whatever the exit status; the error reports only transport failures and
// ctx. ctx's deadline becomes the command's timeout.
func (l *Lab) Exec(ctx context.Context, cmd string) (Result, error) {
	return l.ExecRequest(ctx, agent.Request{Cmd: cmd})
}

// ExecRequest runs a full request (env, stdin, dir, timeout). Every
// command is logged with its duration and exit status to DIR/commands.log.
func (l *Lab) ExecRequest(ctx context.Context, req agent.Request) (Result, error) {
	start := time.Now()
	res, err := l.runner.Exec(ctx, req)
	l.logCommand(start, req.Cmd, res, err)
	return res, err
}

// logCommand appends one line per command to DIR/commands.log.
func (l *Lab) logCommand(start time.Time, cmd string, res Result, err error) {
	status := fmt.Sprintf("exit=%d", res.Exit)
	if err != nil {
		status = "error=" + strconv.Quote(err.Error())
	} else if res.Err != "" {
		status += " " + strconv.Quote(res.Err)
	}
	if len(cmd) > 300 {
		cmd = cmd[:300] + "..."
	}
	line := fmt.Sprintf("%s %8.3fs %s %s\n", start.Format("15:04:05.000"), time.Since(start).Seconds(), status, strconv.Quote(cmd))
	l.logMu.Lock()
	defer l.logMu.Unlock()
	f, ferr := os.OpenFile(filepath.Join(l.dir, "commands.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if ferr != nil {
		return
	}
	_, _ = f.WriteString(line)
	_ = f.Close()
}

// Run is Exec, with a *CommandError when cmd exits non-zero or times out.
func (l *Lab) Run(ctx context.Context, cmd string) (Result, error) {
	res, err := l.Exec(ctx, cmd)
	if err != nil {
		return res, err
	}
	if res.Exit != 0 || res.Err != "" {
		return res, &CommandError{Cmd: cmd, Result: res}
	}
	return res, nil
}

// MustRun runs cmd bounded by Options.StepTimeout and fails the test when
// it does not exit 0. It returns stdout.
func (l *Lab) MustRun(cmd string) string {
	l.t.Helper()
	ctx, cancel := l.stepContext()
	defer cancel()
	res, err := l.Run(ctx, cmd)
	if err != nil {
		l.t.Fatal(err)
	}
	return string(res.Stdout)
}

// WriteFile writes data to path where the lab runs (guest or host).
func (l *Lab) WriteFile(ctx context.Context, path string, data []byte, perm os.FileMode) error {
	cmd := fmt.Sprintf("mkdir -p %s && cat > %s && chmod %o %s", shellQuote(filepath.Dir(path)), shellQuote(path), perm, shellQuote(path))
	res, err := l.ExecRequest(ctx, agent.Request{Cmd: cmd, Stdin: data})
	if err != nil {
		return err
	}
	if res.Exit != 0 {
		return &CommandError{Cmd: cmd, Result: res}
	}
	return nil
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || r == '=' || r == ':' || r == ',' || r == '+' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9'))
	}) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
