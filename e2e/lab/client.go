package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/dmvpnd/dmvpnd/e2e/lab/agent"
)

// ErrClosed is returned for requests on a closed or broken agent connection.
var ErrClosed = errors.New("lab: agent connection closed")

// agentClient multiplexes requests over one agent connection.
type agentClient struct {
	conn io.ReadWriteCloser

	wmu sync.Mutex
	enc *json.Encoder

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan agent.Response
	err     error // set once the reader stops
	done    chan struct{}
}

func newAgentClient(conn io.ReadWriteCloser) *agentClient {
	c := &agentClient{
		conn:    conn,
		enc:     json.NewEncoder(conn),
		nextID:  1,
		pending: map[uint64]chan agent.Response{},
		done:    make(chan struct{}),
	}
	go c.readLoop()
	return c
}

func (c *agentClient) readLoop() {
	sc := bufio.NewScanner(c.conn)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		var resp agent.Response
		if err := json.Unmarshal(sc.Bytes(), &resp); err != nil {
			// Garbage on the port (e.g. from before the agent started): skip.
			continue
		}
		c.mu.Lock()
		ch, ok := c.pending[resp.ID]
		delete(c.pending, resp.ID)
		c.mu.Unlock()
		if ok {
			ch <- resp
		}
	}
	c.mu.Lock()
	c.err = ErrClosed
	if err := sc.Err(); err != nil {
		c.err = fmt.Errorf("%w: %w", ErrClosed, err)
	}
	c.mu.Unlock()
	close(c.done)
}

// Do sends req (its ID is assigned here) and waits for the response or ctx.
// When ctx ends first, the agent is asked to kill the command. A request
// without a Timeout gets the time left until ctx's deadline, so the agent
// may kill the command and answer just before ctx ends here (the guest's
// clock need not agree with the host's): that answer is ctx's deadline too,
// and Do returns it with an error satisfying errors.Is(err,
// context.DeadlineExceeded), never as a plain result.
func (c *agentClient) Do(ctx context.Context, req agent.Request) (agent.Response, error) {
	ch := make(chan agent.Response, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return agent.Response{}, c.err
	}
	req.ID = c.nextID
	c.nextID++
	c.pending[req.ID] = ch
	c.mu.Unlock()
	ctxTimeout := false
	if req.Timeout == 0 {
		if dl, ok := ctx.Deadline(); ok {
			req.Timeout = max(time.Until(dl), time.Millisecond)
			ctxTimeout = true
		}
	}
	if err := c.send(req); err != nil {
		c.forget(req.ID)
		return agent.Response{}, err
	}
	select {
	case resp := <-ch:
		if resp.TimedOut && ctxTimeout {
			return resp, fmt.Errorf("lab: %q: %w", req.Cmd, context.DeadlineExceeded)
		}
		return resp, nil
	case <-c.done:
		c.forget(req.ID)
		return agent.Response{}, c.err
	case <-ctx.Done():
		c.forget(req.ID)
		_ = c.send(agent.Request{ID: req.ID, Cancel: true})
		return agent.Response{}, fmt.Errorf("lab: %q: %w", req.Cmd, ctx.Err())
	}
}

func (c *agentClient) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

func (c *agentClient) send(req agent.Request) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.enc.Encode(req); err != nil {
		return fmt.Errorf("lab: send to agent: %w", err)
	}
	return nil
}

func (c *agentClient) Close() error { return c.conn.Close() }
