package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
)

// Serve reads requests from r and writes responses to w until r ends or ctx
// is done. Requests run concurrently; responses are written whole, one per
// line, in completion order. A malformed frame is answered with an error
// response (ID 0) and skipped.
func Serve(ctx context.Context, r io.Reader, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wmu     sync.Mutex
		enc     = json.NewEncoder(w)
		mu      sync.Mutex
		running = map[uint64]context.CancelFunc{}
		wg      sync.WaitGroup
	)
	reply := func(resp Response) {
		wmu.Lock()
		defer wmu.Unlock()
		_ = enc.Encode(resp)
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		var req Request
		if err := json.Unmarshal(line, &req); err != nil {
			reply(Response{Exit: -1, Err: fmt.Sprintf("agent: bad frame: %v", err)})
			continue
		}
		if req.Cancel {
			mu.Lock()
			if c, ok := running[req.ID]; ok {
				c()
			}
			mu.Unlock()
			continue
		}
		rctx, rcancel := context.WithCancel(ctx)
		mu.Lock()
		running[req.ID] = rcancel
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := Execute(rctx, req)
			mu.Lock()
			delete(running, req.ID)
			mu.Unlock()
			rcancel()
			reply(resp)
		}()
	}
	cancel()
	wg.Wait()
	if err := sc.Err(); err != nil {
		return fmt.Errorf("agent: read: %w", err)
	}
	return nil
}
