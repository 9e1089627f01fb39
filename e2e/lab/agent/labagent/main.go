// Command labagent is the lab's guest agent. The initramfs starts it as PID 1
// after switch_root ("labagent init"); PID 1 then runs "labagent serve" as its
// only direct child and reaps every orphan, while the serving child executes
// requests from the host over the virtio-serial port named agent.PortName.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/dmvpnd/dmvpnd/e2e/lab/agent"
)

func main() {
	mode := "serve"
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	var err error
	switch mode {
	case "init":
		err = runInit()
	case "serve":
		err = serve()
	default:
		err = fmt.Errorf("unknown mode %q (want init or serve)", mode)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "labagent: %v\n", err)
		os.Exit(1)
	}
}

// runInit is PID 1: start the server and reap every child forever.
func runInit() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	_ = os.Setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	_ = os.Setenv("HOME", "/root")
	for {
		cmd := exec.Command(self, "serve")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Start(); err != nil {
			fmt.Fprintf(os.Stderr, "labagent: start server: %v\n", err)
			time.Sleep(time.Second)
			continue
		}
		pid := cmd.Process.Pid
		for {
			var ws syscall.WaitStatus
			p, err := syscall.Wait4(-1, &ws, 0, nil)
			if err == syscall.EINTR {
				continue
			}
			if err != nil || p == pid {
				fmt.Fprintf(os.Stderr, "labagent: server exited (%v, %v); restarting\n", ws, err)
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// findPort returns the device node of the virtio-serial port named agent.PortName.
func findPort() (string, error) {
	names, err := filepath.Glob("/sys/class/virtio-ports/*/name")
	if err != nil {
		return "", err
	}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			continue
		}
		if strings.TrimSpace(string(b)) == agent.PortName {
			return "/dev/" + filepath.Base(filepath.Dir(n)), nil
		}
	}
	return "", fmt.Errorf("no virtio port named %q", agent.PortName)
}

func serve() error {
	var dev string
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		if dev, err = findPort(); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "labagent: serving on %s\n", dev)
	// The port reads EOF while the host side is disconnected; serve again
	// after a short pause until the host connects.
	for {
		start := time.Now()
		if err := agent.Serve(context.Background(), f, f); err != nil {
			fmt.Fprintf(os.Stderr, "labagent: %v\n", err)
		}
		if time.Since(start) < 100*time.Millisecond {
			time.Sleep(50 * time.Millisecond)
		}
	}
}
