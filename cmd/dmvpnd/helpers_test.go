package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/controller/api/apitest"
	"github.com/dmvpnd/dmvpnd/controller/config"
	"github.com/dmvpnd/dmvpnd/controller/metrics"
)

const hubYAML = `
tunnel: {local_nbma: 192.0.2.1, address: 10.0.0.1/24}
nhrp: {role: hub, network_id: 1, authentication: hunter2}
bgp: {enabled: true, asn: 65000, prefixes: [192.168.0.0/24]}
`

// testConfig parses y and points the sockets into dir.
func testConfig(t *testing.T, y, dir string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	c.Control.Socket = filepath.Join(dir, "ctl.sock")
	c.Metrics.Listen = "127.0.0.1:0"
	return c
}

// fakeDaemon records what the runtime does to it.
type fakeDaemon struct {
	*apitest.Fake
	started   chan struct{}
	reloads   chan *config.Config
	runErr    error
	reloadErr error
	exitNow   chan struct{}
}

func newFakeDaemon() *fakeDaemon {
	return &fakeDaemon{Fake: apitest.NewFake(apitest.HubFixture()), started: make(chan struct{}),
		reloads: make(chan *config.Config, 8), exitNow: make(chan struct{})}
}

func (f *fakeDaemon) Run(ctx context.Context) error {
	close(f.started)
	select {
	case <-ctx.Done():
		return nil
	case <-f.exitNow:
		return f.runErr
	}
}

func (f *fakeDaemon) Reload(_ context.Context, cfg *config.Config) error {
	if f.reloadErr != nil {
		return f.reloadErr
	}
	f.reloads <- cfg
	return nil
}

// loader serves queued results for config loads.
type loader struct {
	mu   sync.Mutex
	next []func() (*config.Config, error)
}

func (l *loader) push(c *config.Config, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.next = append(l.next, func() (*config.Config, error) { return c, err })
}

func (l *loader) load(string) (*config.Config, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.next) == 0 {
		return nil, errors.New("loader: no more configurations queued")
	}
	f := l.next[0]
	l.next = l.next[1:]
	return f()
}

// notes collects sd_notify states.
type notes chan string

func (n notes) notify(s string) { n <- s }

// waitFor reads states until want arrives, failing after a deadline.
func (n notes) waitFor(t *testing.T, want string) []string {
	t.Helper()
	var seen []string
	deadline := time.After(10 * time.Second)
	for {
		select {
		case s := <-n:
			seen = append(seen, s)
			if s == want || strings.HasPrefix(s, want) {
				return seen
			}
		case <-deadline:
			t.Fatalf("no %q notification; saw %q", want, seen)
		}
	}
}

func newSupervisor(t *testing.T, l *loader, d Daemon, initial *config.Config, n notes) (*supervisor, *metrics.Metrics, zap.AtomicLevel) {
	m := metrics.New("test")
	level := zap.NewAtomicLevelAt(zap.InfoLevel)
	parse := func([]byte) (*config.Config, error) { return nil, errors.New("config: parse: not in this test") }
	return &supervisor{path: "/etc/dmvpnd/dmvpnd.yaml", load: l.load, parse: parse, daemon: d, log: zap.NewNop(),
		level: level, metrics: m, notify: n.notify, cfg: initial}, m, level
}
