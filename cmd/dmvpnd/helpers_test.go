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

// supRig is a supervisor of a fake daemon running hubYAML (old), whose
// configuration files live in dir and are read through l.
type supRig struct {
	sup   *supervisor
	m     *metrics.Metrics
	level zap.AtomicLevel
	l     *loader
	d     *fakeDaemon
	n     notes
	dir   string
	old   *config.Config
}

func newSupRig(t *testing.T) *supRig {
	r := &supRig{m: metrics.New("test"), level: zap.NewAtomicLevelAt(zap.InfoLevel), l: &loader{}, d: newFakeDaemon(),
		n: make(notes, 64), dir: t.TempDir()}
	r.old = testConfig(t, hubYAML, r.dir)
	parse := func([]byte) (*config.Config, error) { return nil, errors.New("config: parse: not in this test") }
	r.sup = &supervisor{path: "/etc/dmvpnd/dmvpnd.yaml", load: r.l.load, parse: parse, daemon: r.d, log: zap.NewNop(),
		level: r.level, metrics: r.m, notify: r.n.notify, cfg: r.old}
	return r
}
