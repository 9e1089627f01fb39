package lab

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/e2e/lab/agent"
)

// pipeAgent serves the agent protocol in-process over a net.Pipe.
func pipeAgent(t *testing.T) *agentClient {
	t.Helper()
	host, guest := net.Pipe()
	go func() { _ = agent.Serve(context.Background(), guest, guest); guest.Close() }()
	c := newAgentClient(host)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestAgentClientConcurrent(t *testing.T) {
	c := pipeAgent(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Do(context.Background(), agent.Request{Cmd: "echo $0-" + string(rune('a'+i))})
			if err != nil {
				t.Error(err)
				return
			}
			if want := "/bin/sh-" + string(rune('a'+i)) + "\n"; string(resp.Stdout) != want {
				t.Errorf("stdout %q, want %q", resp.Stdout, want)
			}
		}()
	}
	wg.Wait()
}

func TestAgentClientContextCancels(t *testing.T) {
	c := pipeAgent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Do(ctx, agent.Request{Cmd: "sleep 20"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Do = %v, want deadline exceeded", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("Do took %v", time.Since(start))
	}
	// The connection stays usable.
	resp, err := c.Do(context.Background(), agent.Request{Cmd: "echo ok"})
	if err != nil || strings.TrimSpace(string(resp.Stdout)) != "ok" {
		t.Errorf("Do after cancel = %+v, %v", resp, err)
	}
}

// TestAgentClientAgentTimeoutIsDeadline pins the race in which the agent
// enforces the timeout Do derived from ctx's deadline and answers before
// ctx ends on the host: the agent here answers every request with a
// timeout as timed out at once, while ctx has an hour left, so Do sees the
// answer first every time. Do must report ctx's deadline, not a result.
func TestAgentClientAgentTimeoutIsDeadline(t *testing.T) {
	host, guest := net.Pipe()
	go func() {
		defer guest.Close()
		dec, enc := json.NewDecoder(guest), json.NewEncoder(guest)
		for {
			var req agent.Request
			if dec.Decode(&req) != nil {
				return
			}
			resp := agent.Response{ID: req.ID}
			if req.Timeout > 0 {
				resp.Exit, resp.TimedOut, resp.Err = -1, true, "timed out"
			}
			if enc.Encode(resp) != nil {
				return
			}
		}
	}()
	c := newAgentClient(host)
	t.Cleanup(func() { c.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	resp, err := c.Do(ctx, agent.Request{Cmd: "sleep 20"})
	if !errors.Is(err, context.DeadlineExceeded) || !resp.TimedOut {
		t.Errorf("Do with the agent's timeout from ctx = %+v, %v; want the timed-out response and deadline exceeded", resp, err)
	}
	// A timeout the caller set is the caller's to read from the response.
	resp, err = c.Do(ctx, agent.Request{Cmd: "sleep 20", Timeout: time.Second})
	if err != nil || !resp.TimedOut {
		t.Errorf("Do with the caller's timeout = %+v, %v; want a timed-out response and no error", resp, err)
	}
	// Without a deadline nothing times out.
	resp, err = c.Do(context.Background(), agent.Request{Cmd: "true"})
	if err != nil || resp.TimedOut {
		t.Errorf("Do without a deadline = %+v, %v", resp, err)
	}
}

func TestAgentClientClosed(t *testing.T) {
	host, guest := net.Pipe()
	c := newAgentClient(host)
	guest.Close()
	<-c.done
	if _, err := c.Do(context.Background(), agent.Request{Cmd: "true"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Do on closed = %v, want ErrClosed", err)
	}
}
