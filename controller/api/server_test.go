package api_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/controller/api/apitest"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
)

// serve starts a Server for p on a fresh socket and returns a Client.
func serve(t *testing.T, p api.Provider, opts ...api.Option) (*api.Client, string) {
	t.Helper()
	path := apitest.Serve(t, p, opts...)
	return api.NewClient(path), path
}

func TestViewsRoundTrip(t *testing.T) {
	for name, snap := range map[string]apitest.Snapshot{"hub": apitest.HubFixture(), "spoke": apitest.SpokeFixture()} {
		t.Run(name, func(t *testing.T) {
			c, _ := serve(t, apitest.NewFake(snap))
			var errs []error
			got := apitest.Capture(context.Background(), c, func(view string, err error) {
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", view, err))
				}
			})
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			got.Now = snap.Now
			if snap.Shortcuts == nil {
				snap.Shortcuts = []api.Shortcut{} // served as [] not null
			}
			if snap.SAs == nil {
				snap.SAs = []api.SA{}
			}
			if diff := cmp.Diff(snap, got, apitest.CmpOptions()); diff != "" {
				t.Errorf("snapshot (-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	f := apitest.NewFake(apitest.HubFixture())
	c, _ := serve(t, f)
	ctx := context.Background()

	f.SetErr(fmt.Errorf("bgp: %w", api.ErrNotEnabled))
	_, err := c.BGP(ctx)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != 404 || ae.Message != "bgp: not enabled" {
		t.Errorf("BGP error = %#v, want 404 bgp: not enabled", err)
	}
	f.SetErr(errors.New("controller: boom"))
	_, err = c.Cache(ctx)
	if !errors.As(err, &ae) || ae.Status != 500 || err.Error() != "api: controller: boom" {
		t.Errorf("Cache error = %v", err)
	}
	f.SetErr(nil)

	f.SetReloadErr(errors.New("config: nhrp.role: required (hub or spoke)"))
	_, err = c.Reload(ctx, api.ReloadRequest{})
	if !errors.As(err, &ae) || ae.Status != 422 || ae.Message != "config: nhrp.role: required (hub or spoke)" {
		t.Errorf("Reload error = %v", err)
	}
	f.SetReloadErr(nil)
	want := api.ReloadResult{Changes: []api.ConfigChange{
		{Key: "nhrp.holding_time", Old: "600s", New: "300s", Disposition: api.DispositionLive},
		{Key: "tunnel.name", Old: "gre1", New: "gre2", Disposition: api.DispositionRestart, Reason: "the tunnel interface is created at start"},
	}}
	f.SetReloadResult(want)
	got, err := c.Reload(ctx, api.ReloadRequest{})
	if err != nil || f.Calls("Reload") != 2 || !cmp.Equal(got, want) || got.Complete() {
		t.Errorf("Reload = %+v, %v, calls %d; want %+v, not complete", got, err, f.Calls("Reload"), want)
	}
	got, err = c.Reload(ctx, api.ReloadRequest{DryRun: true, Config: "nhrp: {}"})
	if err != nil || !got.DryRun || f.LastReload().Config != "nhrp: {}" {
		t.Errorf("dry-run Reload = %+v, %v; request %+v", got, err, f.LastReload())
	}
	if _, err := c.Reload(ctx, api.ReloadRequest{Config: "nhrp: {}"}); !errors.As(err, &ae) || ae.Status != 400 {
		t.Errorf("Reload with a configuration but no dry run = %v, want 400", err)
	}
}

func TestClear(t *testing.T) {
	f := apitest.NewFake(apitest.SpokeFixture())
	c, _ := serve(t, f)
	ctx := context.Background()
	n, err := c.ClearCache(ctx)
	if err != nil || n != 1 {
		t.Fatalf("ClearCache = %d, %v; want 1", n, err)
	}
	cache, err := c.Cache(ctx)
	if err != nil || len(cache) != 1 {
		t.Errorf("cache after clear: %d entries, %v; want the nhs", len(cache), err)
	}
	if n, err := c.ClearShortcuts(ctx); err != nil || n != 1 {
		t.Errorf("ClearShortcuts = %d, %v; want 1", n, err)
	}
	if sc, err := c.Shortcuts(ctx); err != nil || len(sc) != 0 {
		t.Errorf("shortcuts after clear = %v, %v", sc, err)
	}
}

func TestLogLevel(t *testing.T) {
	lvl := zap.NewAtomicLevelAt(zap.InfoLevel)
	c, _ := serve(t, apitest.NewFake(apitest.HubFixture()), api.WithLevel(lvl))
	ctx := context.Background()
	if got, err := c.LogLevel(ctx); err != nil || got != "info" {
		t.Fatalf("LogLevel = %q, %v", got, err)
	}
	if got, err := c.SetLogLevel(ctx, "debug"); err != nil || got != "debug" || lvl.Level() != zap.DebugLevel {
		t.Fatalf("SetLogLevel = %q, %v; level now %s", got, err, lvl.Level())
	}
	_, err := c.SetLogLevel(ctx, "panic")
	if err == nil || err.Error() != `api: "panic" is not debug, info, warn or error` || lvl.Level() != zap.DebugLevel {
		t.Errorf("SetLogLevel(panic) = %v, level %s", err, lvl.Level())
	}
	c2, _ := serve(t, apitest.NewFake(apitest.HubFixture()))
	if _, err := c2.LogLevel(ctx); err == nil {
		t.Error("LogLevel without WithLevel succeeded")
	}
}

func TestWaitReady(t *testing.T) {
	f := apitest.NewFake(apitest.SpokeFixture())
	c, _ := serve(t, &apitest.ReadyAfter{Fake: f, N: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.WaitReady(ctx, time.Millisecond)
	if err != nil || !st.Ready || f.Calls("Status") != 3 {
		t.Fatalf("WaitReady = %+v, %v after %d calls", st, err, f.Calls("Status"))
	}

	f.SetStatus(api.Status{State: "registering", Reason: "no NHS answered"})
	c2, _ := serve(t, &apitest.ReadyAfter{Fake: f, N: 1 << 30})
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = c2.WaitReady(ctx, 5*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "not ready (state registering: no NHS answered)") || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitReady timeout = %v", err)
	}

	dead := api.NewClient(filepath.Join(t.TempDir(), "none.sock"))
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err = dead.WaitReady(ctx, 5*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "is dmvpnd running?") {
		t.Errorf("WaitReady without daemon = %v", err)
	}
}

func TestListenPermissions(t *testing.T) {
	// As root, use a group other than our own so the chown is visible.
	g, err := user.LookupGroup("nogroup")
	if os.Getuid() != 0 || err != nil {
		g, err = user.LookupGroupId(strconv.Itoa(os.Getgid()))
	}
	if err != nil {
		t.Skipf("no name for gid %d: %v", os.Getgid(), err)
	}
	path := filepath.Join(t.TempDir(), "sub", "ctl.sock")
	ln, err := api.Listen(path, g.Name)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 || fi.Mode().Type() != os.ModeSocket {
		t.Errorf("mode = %v, want socket 0660", fi.Mode())
	}
	if gid := fi.Sys().(*syscall.Stat_t).Gid; strconv.Itoa(int(gid)) != g.Gid {
		t.Errorf("socket gid = %d, want %s", gid, g.Gid)
	}
	if _, err := api.Listen(path, ""); err == nil || !strings.Contains(err.Error(), "is in use") {
		t.Errorf("second Listen = %v, want in use", err)
	}
	ln.Close()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after Close: %v", err)
	}
	if _, err := api.Listen(path, "no-such-group-dmvpnd"); err == nil || !strings.Contains(err.Error(), "group") {
		t.Errorf("Listen with unknown group = %v", err)
	}
}

func TestListenStaleAndNonSocket(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // leaves the file, nobody listening
	ln, err := api.Listen(stale, "")
	if err != nil {
		t.Fatalf("Listen over stale socket: %v", err)
	}
	ln.Close()

	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Listen(file, ""); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("Listen over a file = %v", err)
	}
}
