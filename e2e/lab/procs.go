package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Proc is a background process started by Node.Start.
type Proc struct {
	n    *Node
	Name string
	PID  int
	// Log is the file receiving the process's stdout and stderr.
	Log string
}

// Start runs cmd in the background in the node's namespace, detached in
// its own session, with stdout and stderr in DIR/nodes/NODE/NAME.log. The
// lab stops it at cleanup (in VM mode qemu's exit does). cmd is one
// command line; it is exec'd, so Proc.PID is the program's own pid.
func (n *Node) Start(ctx context.Context, name, cmd string) (*Proc, error) {
	return n.StartScript(ctx, name, "exec "+cmd)
}

// StartScript is Start for a shell script run by sh -c in the node's
// namespace, e.g. to prepare the process's mount namespace first. The
// script must exec its daemon last, so that Proc.PID is the daemon's pid.
func (n *Node) StartScript(ctx context.Context, name, script string) (*Proc, error) {
	log := n.logDir() + "/" + name + ".log"
	if err := os.MkdirAll(n.logDir(), 0o755); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	inner := "sh -c " + shellQuote(script)
	if n.NS != "" {
		inner = "ip netns exec " + n.NS + " " + inner
	}
	// setsid keeps the process out of the agent's process group, so the
	// request's cleanup does not kill it; $! is its pid after the execs.
	full := fmt.Sprintf("setsid %s >>%s 2>&1 </dev/null & echo $!", inner, shellQuote(log))
	res, err := n.l.Run(ctx, full)
	if err != nil {
		return nil, fmt.Errorf("lab: start %s on %s: %w", name, n.Name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(res.Stdout)))
	if err != nil {
		return nil, fmt.Errorf("lab: start %s: bad pid %q", name, res.Stdout)
	}
	p := &Proc{n: n, Name: name, PID: pid, Log: log}
	n.l.mu.Lock()
	n.l.procs = append(n.l.procs, p)
	n.l.mu.Unlock()
	return p, nil
}

// procAlive renders a shell condition that is true while pid runs and is
// not a zombie, with shell builtins only (each exec is slow under emulation).
func procAlive(pid int) string {
	return fmt.Sprintf("{ read -r _ _ st _ < /proc/%d/stat && [ \"$st\" != Z ]; } 2>/dev/null", pid)
}

// Alive reports whether the process still runs (and is not a zombie).
func (p *Proc) Alive(ctx context.Context) bool {
	res, err := p.n.l.Exec(ctx, procAlive(p.PID))
	return err == nil && res.Exit == 0
}

// Stop sends SIGTERM, waits up to 5 s for the process to go, then SIGKILLs it.
func (p *Proc) Stop(ctx context.Context) error {
	_, err := p.n.l.Run(ctx, p.signalScript("TERM", 50, fmt.Sprintf("kill -KILL %d 2>/dev/null; exit 0", p.PID)))
	return err
}

// Kill sends SIGKILL (a crash: nothing of the process's own cleanup runs)
// and waits up to 20 s, polling in the guest, until it is gone.
func (p *Proc) Kill(ctx context.Context) error {
	script := p.signalScript("KILL", 200, fmt.Sprintf("echo \"pid %d still runs 20 s after SIGKILL\" >&2; exit 1", p.PID))
	if _, err := p.n.l.Run(ctx, script); err != nil {
		return fmt.Errorf("lab: kill %s on %s: %w", p.Name, p.n.Name, err)
	}
	return nil
}

// signalScript renders a script that sends sig to the process (done if it
// is gone already), polls every 0.1 s, n times, until it is gone, and runs
// then if it is still there.
func (p *Proc) signalScript(sig string, n int, then string) string {
	return fmt.Sprintf(`kill -%[1]s %[2]d 2>/dev/null || exit 0
for i in $(seq %[3]d); do
	%[4]s || exit 0
	sleep 0.1
done
%[5]s`, sig, p.PID, n, procAlive(p.PID), then)
}

// permanentError marks a WaitFor condition error that retrying cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent wraps err so that WaitFor stops retrying and returns it.
func Permanent(err error) error { return permanentError{err} }

// WaitFor polls cond every interval until it returns nil or ctx ends, and
// returns the last error on timeout. Use it to wait for state with a
// deadline. A condition error wrapped with Permanent ends the wait at once.
func WaitFor(ctx context.Context, interval time.Duration, cond func(context.Context) error) error {
	for {
		err := cond(ctx)
		if err == nil {
			return nil
		}
		var pe permanentError
		if errors.As(err, &pe) {
			return fmt.Errorf("lab: %w", pe.err)
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("lab: gave up waiting: %w (last: %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// waitReady polls, with one command per round, until ready (a shell
// condition) holds, failing at once when p has exited; logs name the files
// to look at in the error.
func waitReady(ctx context.Context, l *Lab, p *Proc, ready string, logs ...string) error {
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	script := fmt.Sprintf("%s && exit 0; %s && exit 1; exit 2", ready, procAlive(p.PID))
	return WaitFor(wctx, 50*time.Millisecond, func(ctx context.Context) error {
		res, err := l.Exec(ctx, script)
		switch {
		case err != nil:
			return err
		case res.Exit == 0:
			return nil
		case res.Exit == 2:
			return Permanent(fmt.Errorf("%s exited (logs %s)", p.Name, strings.Join(append([]string{p.Log}, logs...), ", ")))
		}
		return fmt.Errorf("%s not ready", p.Name)
	})
}
