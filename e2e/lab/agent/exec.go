package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// capped is an io.Writer that keeps at most MaxOutput bytes.
type capped struct {
	buf     bytes.Buffer
	dropped int
}

func (c *capped) Write(p []byte) (int, error) {
	room := MaxOutput - c.buf.Len()
	if room < len(p) {
		if room > 0 {
			c.buf.Write(p[:room])
		}
		c.dropped += len(p) - max(room, 0)
		return len(p), nil
	}
	return c.buf.Write(p)
}

func (c *capped) bytes() []byte {
	if c.dropped > 0 {
		fmt.Fprintf(&c.buf, "\n[agent: %d bytes dropped]\n", c.dropped)
	}
	return c.buf.Bytes()
}

// Execute runs req.Cmd under /bin/sh -c and waits for it, its timeout or ctx.
// When the timeout or ctx ends, the command's whole process group is
// killed. Children still running after a normal exit are left alone;
// commands that start daemons should detach them (setsid) and redirect their
// output, or the request waits up to 2 s for the output pipes.
func Execute(ctx context.Context, req Request) Response {
	start := time.Now()
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	resp := Response{ID: req.ID, Exit: -1}
	var stdout, stderr capped
	cmd := exec.Command("/bin/sh", "-c", req.Cmd)
	cmd.Env = append(os.Environ(), req.Env...)
	cmd.Dir = req.Dir
	if cmd.Dir == "" {
		cmd.Dir = "/"
	}
	if req.Stdin != nil {
		cmd.Stdin = bytes.NewReader(req.Stdin)
	}
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A backgrounded child that keeps our pipes open must not hang the request.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		resp.Err = fmt.Sprintf("agent: start: %v", err)
		resp.Elapsed = time.Since(start)
		return resp
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		err = <-done
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			resp.TimedOut = true
			resp.Err = fmt.Sprintf("agent: timed out after %v", timeout)
		} else {
			resp.Err = "agent: canceled"
		}
	}
	// After a normal exit the group is left alone: a child that is still
	// detaching (setsid) must not be killed before it has left the group.
	resp.Stdout = stdout.bytes()
	resp.Stderr = stderr.bytes()
	resp.Elapsed = time.Since(start)
	if resp.Err != "" {
		return resp
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		resp.Exit = 0
	case errors.As(err, &ee):
		resp.Exit = ee.ExitCode()
		if errors.Is(err, exec.ErrWaitDelay) {
			resp.Exit = cmd.ProcessState.ExitCode()
		}
	case errors.Is(err, exec.ErrWaitDelay):
		resp.Exit = cmd.ProcessState.ExitCode()
	default:
		resp.Err = fmt.Sprintf("agent: wait: %v", err)
	}
	return resp
}
