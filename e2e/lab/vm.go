package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/e2e/lab/agent"
)

// vm is a running qemu guest with a connected agent.
type vm struct {
	cfg     vmConfig
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	client  *agentClient
	sockDir string
	log     *zap.Logger
}

// buildAgent compiles the guest agent as a static binary into out.
func buildAgent(ctx context.Context, root, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, "./e2e/lab/agent/labagent")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("lab: build agent: %w: %s", err, b)
	}
	return nil
}

// agentOnce is the agent binary of this test process: built by the first
// lab, hard-linked into the results directory of every later one (a build
// costs a link step of a second or more on a loaded machine, once per boot).
var agentOnce = agentCache{build: buildAgent}

type agentCache struct {
	build func(ctx context.Context, root, out string) error
	mu    sync.Mutex
	path  string // the first build; "" until one succeeded
}

// get puts the agent binary at out: a hard link to the process's first
// build when that still exists, else a new build.
func (c *agentCache) get(ctx context.Context, root, out string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.path != "" && os.Link(c.path, out) == nil {
		return nil
	}
	if err := c.build(ctx, root, out); err != nil {
		return err
	}
	c.path = out
	return nil
}

// startVM boots qemu and waits until the agent answers or ctx ends.
func startVM(ctx context.Context, cfg vmConfig, log *zap.Logger) (*vm, error) {
	sockDir, err := os.MkdirTemp("", "lab")
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	cfg.Socket = filepath.Join(sockDir, "agent.sock")
	cfg.Monitor = filepath.Join(sockDir, "monitor.sock")
	args, err := cfg.qemuArgs()
	if err != nil {
		os.RemoveAll(sockDir)
		return nil, err
	}
	qlog, err := os.Create(filepath.Join(cfg.ResultsDir, "qemu.log"))
	if err != nil {
		os.RemoveAll(sockDir)
		return nil, fmt.Errorf("lab: %w", err)
	}
	defer qlog.Close()
	v := &vm{cfg: cfg, exited: make(chan struct{}), sockDir: sockDir, log: log}
	v.cmd = exec.Command("qemu-system-x86_64", args...)
	v.cmd.Stdout, v.cmd.Stderr = qlog, qlog
	// Should the test binary die without its cleanups (go test -timeout),
	// qemu goes with it.
	v.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := v.cmd.Start(); err != nil {
		os.RemoveAll(sockDir)
		return nil, fmt.Errorf("lab: start qemu: %w", err)
	}
	log.Info("qemu started", zap.Int("pid", v.cmd.Process.Pid), zap.String("accel", cfg.Accel))
	go func() { v.waitErr = v.cmd.Wait(); close(v.exited) }()
	if err := v.connect(ctx); err != nil {
		v.stop()
		return nil, err
	}
	return v, nil
}

// connect dials the agent socket and pings until the agent answers.
func (v *vm) connect(ctx context.Context) error {
	fail := func(what string, err error) error {
		select {
		case <-v.exited:
			what += fmt.Sprintf(" (qemu exited: %v)", v.waitErr)
		default:
		}
		return fmt.Errorf("lab: %s: %w\n%s\n%s", what, err, v.consoleTail(30), v.vcpuState())
	}
	var conn net.Conn
	for {
		var err error
		conn, err = net.Dial("unix", v.cfg.Socket)
		if err == nil {
			break
		}
		if err := v.pause(ctx, 20*time.Millisecond); err != nil {
			return fail("connect to agent socket", err)
		}
	}
	v.client = newAgentClient(conn)
	// A request written before the agent opened its port is lost, so each
	// try has a deadline; it doubles from 1 s up to agentTryMax because on
	// a busy host one "true" in the booting guest can take longer than a
	// second, and a fixed 1 s cancelled every try until the boot deadline.
	try := time.Second
	for {
		pctx, cancel := context.WithTimeout(ctx, try)
		resp, err := v.client.Do(pctx, agent.Request{Cmd: "true", Timeout: try + 4*time.Second})
		cancel()
		if err == nil && resp.Exit == 0 {
			return nil
		}
		try = min(2*try, agentTryMax)
		if err := v.pause(ctx, 0); err != nil {
			return fail("wait for agent", err)
		}
	}
}

// agentTryMax bounds one try of connect's agent ping.
const agentTryMax = 16 * time.Second

// pause waits d, failing early when ctx ends or qemu exits.
func (v *vm) pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-v.exited:
		return errors.New("qemu exited")
	case <-t.C:
		return nil
	}
}

// vcpuState asks qemu's monitor for every vCPU's registers (general
// purpose, instruction pointer, HLT flag, control registers): for a guest
// that never answered, whether it is still in the firmware, in the
// kernel, spinning or halted.
func (v *vm) vcpuState() string {
	conn, err := net.DialTimeout("unix", v.cfg.Monitor, time.Second)
	if err != nil {
		return fmt.Sprintf("(no qemu monitor: %v)", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	// Each answer ends with the next prompt; the first prompt follows
	// the banner.
	buf := make([]byte, 4096)
	var got []byte
	for _, cmd := range []string{"", "info registers -a"} {
		if cmd != "" {
			if _, err := conn.Write([]byte(cmd + "\n")); err != nil {
				return fmt.Sprintf("(qemu monitor: %v)", err)
			}
		}
		got = got[:0]
		for !bytes.HasSuffix(got, []byte("(qemu) ")) {
			n, err := conn.Read(buf)
			if err != nil {
				return fmt.Sprintf("(qemu monitor: %q: %v)", cmd, err)
			}
			got = append(got, buf[:n]...)
		}
	}
	var out strings.Builder
	out.WriteString("qemu monitor, info registers -a (floating point, vector and segment registers left out):")
	for line := range strings.SplitSeq(monitorText(got), "\n") {
		for _, p := range []string{"CPU#", "RAX=", "EAX=", "RSI=", "ESI=", "R8 =", "R12=", "RIP=", "EIP=", "CR0="} {
			if strings.HasPrefix(line, p) {
				out.WriteString("\n" + line)
				break
			}
		}
	}
	return out.String()
}

// monitorText is a monitor answer without the echoed command line, the
// terminal's escape sequences and the closing prompt.
func monitorText(b []byte) string {
	var clean []byte
	for i := 0; i < len(b); i++ {
		if b[i] == 0x1b { // ESC [ params final
			j := i + 1
			if j < len(b) && b[j] == '[' {
				j++
				for j < len(b) && (b[j] < 0x40 || b[j] > 0x7e) {
					j++
				}
			}
			i = j
			continue
		}
		if b[i] != '\r' {
			clean = append(clean, b[i])
		}
	}
	clean = bytes.TrimSuffix(clean, []byte("(qemu) "))
	if _, rest, ok := bytes.Cut(clean, []byte("\n")); ok { // the echoed command
		clean = rest
	}
	return string(bytes.TrimRight(clean, "\n"))
}

// consoleTail returns the last n lines of the guest console.
func (v *vm) consoleTail(n int) string {
	b, err := os.ReadFile(v.cfg.Console)
	if err != nil {
		return fmt.Sprintf("(no console: %v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "guest console (" + v.cfg.Console + "), last lines:\n" + string(bytes.Join(lines, []byte("\n")))
}

// stop kills qemu (the guest is disposable) and waits for it.
func (v *vm) stop() {
	if v.client != nil {
		v.client.Close()
	}
	if v.cmd.Process != nil {
		_ = v.cmd.Process.Kill()
		select {
		case <-v.exited:
		case <-time.After(10 * time.Second):
			v.log.Warn("qemu did not exit after SIGKILL")
		}
	}
	os.RemoveAll(v.sockDir)
}

// run executes one request in the guest.
func (v *vm) run(ctx context.Context, req agent.Request) (agent.Response, error) {
	select {
	case <-v.exited:
		return agent.Response{}, fmt.Errorf("lab: qemu exited: %v\n%s", v.waitErr, v.consoleTail(20))
	default:
	}
	return v.client.Do(ctx, req)
}

// kvmUsable reports whether /dev/kvm can be opened; it does not prove that
// a guest boots (see Options.Accel).
func kvmUsable() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}
