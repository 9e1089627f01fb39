package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
)

// TestProcess runs the real binary as systemd would: NOTIFY_SOCKET and
// WATCHDOG_USEC set, real SIGHUP and SIGTERM. The daemon programs a real
// tunnel, so it runs as root on a kernel with ip_gre (the lab).
func TestProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	if os.Getenv("DMVPND_PRIVILEGED") != "1" {
		t.Skip("privileged test: the daemon creates a GRE tunnel; set DMVPND_PRIVILEGED=1 (root, kernel with ip_gre)")
	}
	dir := t.TempDir()
	// DMVPND_BIN names a binary built beforehand (the lab builds on the
	// host: compiling in the emulated guest takes minutes).
	bin := os.Getenv("DMVPND_BIN")
	if bin == "" {
		bin = filepath.Join(dir, "dmvpnd")
		if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	notifyPath := filepath.Join(dir, "notify.sock")
	nconn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer nconn.Close()
	states := make(chan string, 64)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := nconn.ReadFromUnix(buf)
			if err != nil {
				close(states)
				return
			}
			states <- string(buf[:n])
		}
	}()
	wait := func(want string) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case s, ok := <-states:
				if !ok {
					t.Fatalf("notify socket closed before %q", want)
				}
				if strings.Contains(s, want) {
					return
				}
			case <-deadline:
				t.Fatalf("no %q from the daemon", want)
			}
		}
	}

	sock := filepath.Join(dir, "ctl.sock")
	cfgPath := filepath.Join(dir, "dmvpnd.yaml")
	good := "tunnel: {local_nbma: 192.0.2.1, address: 10.0.0.1/24}\nnhrp: {role: hub, network_id: 1}\n" +
		"control: {socket: " + sock + "}\nmetrics: {listen: \"\"}\n"
	if err := os.WriteFile(cfgPath, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfgPath)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notifyPath, "WATCHDOG_USEC=100000")
	var logs lockedBuffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	}()

	wait("READY=1")
	wait("WATCHDOG=1")
	st, err := api.NewClient(sock).Status(context.Background())
	if err != nil || !st.Ready || st.State != "running" {
		t.Fatalf("status = %+v, %v", st, err)
	}

	// An invalid file on SIGHUP is rejected and the daemon keeps serving.
	if err := os.WriteFile(cfgPath, []byte("nhrp: {role: nobody}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	wait("RELOADING=1")
	wait("STATUS=reload rejected")
	if _, err := api.NewClient(sock).Status(context.Background()); err != nil {
		t.Fatalf("daemon stopped serving after a rejected reload: %v", err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wait("STOPPING=1")
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("daemon did not exit after SIGTERM")
	}
	for _, want := range []string{"reload rejected", `nhrp.role: \"nobody\" is not hub or spoke`, "shutting down"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs.String())
		}
	}
}
