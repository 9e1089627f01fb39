// Command systemctl stands in for systemd's systemctl on the lab's hosts
// (e2e TestAnsibleRollout), which are namespaces without systemd. It does
// what Ansible's systemd module and the dmvpnd units need, the way systemd
// does it:
//
//   - start starts the units the unit Wants= first (a masked or missing
//     one is skipped, as systemd does for Wants=), creates
//     RuntimeDirectory=, runs ExecStart= with Environment= and
//     NOTIFY_SOCKET in a session of its own and, for Type=notify, returns
//     once the service sent READY=1, failing when it exits first;
//   - reload runs ExecReload= and returns its exit status (dmvpnctl reload
//     fails when dmvpnd refuses the file, and so does the Ansible handler);
//   - stop sends SIGTERM to the main process only (KillMode=mixed), waits
//     TimeoutStopSec= then kills, and removes RuntimeDirectory=;
//   - show, is-active, is-enabled, enable, disable, daemon-reload.
//
// It is a Go program because Python's start-up costs seconds under the
// lab's emulated CPU, and Ansible calls systemctl several times per task.
// State lives in /run/lab-systemd: NAME.pid, NAME.log (the service's
// output), NAME.enabled. Command lines are split on white space (the
// project's units quote nothing).
package main

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const stateDir = "/run/lab-systemd"

var unitDirs = []string{"/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(argv []string, stdout, stderr io.Writer) int {
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	var args []string
	for _, a := range argv {
		if !strings.HasPrefix(a, "-") {
			args = append(args, a)
		}
	}
	if len(args) == 0 {
		return 0
	}
	verb := args[0]
	if verb == "daemon-reload" || verb == "daemon-reexec" {
		return 0
	}
	rc := 0
	for _, a := range args[1:] {
		name := strings.TrimSuffix(a, ".service")
		rc |= do(verb, name, stdout, stderr)
	}
	return rc
}

func do(verb, name string, stdout, stderr io.Writer) int {
	switch verb {
	case "show":
		return show(name, stdout)
	case "is-active":
		if mainPID(name) != 0 {
			fmt.Fprintln(stdout, "active")
			return 0
		}
		fmt.Fprintln(stdout, "inactive")
		return 3
	case "is-enabled":
		u, err := load(name)
		if err != nil || u.masked {
			return 1
		}
		if enabled(name) {
			fmt.Fprintln(stdout, "enabled")
			return 0
		}
		fmt.Fprintln(stdout, "disabled")
		return 1
	case "enable":
		return report(stderr, os.WriteFile(filepath.Join(stateDir, name+".enabled"), nil, 0o644))
	case "disable":
		if err := os.Remove(filepath.Join(stateDir, name+".enabled")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return report(stderr, err)
		}
		return 0
	case "start":
		return report(stderr, start(name, stderr))
	case "stop":
		return report(stderr, stop(name))
	case "restart":
		if err := stop(name); err != nil {
			return report(stderr, err)
		}
		return report(stderr, start(name, stderr))
	case "reload", "try-reload-or-restart":
		return reload(name, stdout, stderr)
	}
	fmt.Fprintf(stderr, "lab systemctl: %s is not supported\n", verb)
	return 1
}

func report(stderr io.Writer, err error) int {
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, err)
	return 1
}

// unit is what this stand-in reads of a unit file.
type unit struct {
	path   string
	masked bool // a link to /dev/null or an empty file
	props  map[string][]string
}

func (u unit) first(key string) string {
	if v := u.props[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// load finds and parses NAME.service.
func load(name string) (unit, error) {
	for _, d := range unitDirs {
		p := filepath.Join(d, name+".service")
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		defer f.Close()
		return parseUnit(p, f)
	}
	return unit{}, fmt.Errorf("unit %s.service not found", name)
}

// parseUnit reads key=value lines; a key may repeat (Environment=, Wants=).
func parseUnit(path string, r io.Reader) (unit, error) {
	u := unit{path: path, props: map[string][]string{}}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		u.props[k] = append(u.props[k], v)
	}
	if err := sc.Err(); err != nil {
		return u, err
	}
	u.masked = len(u.props) == 0
	return u, nil
}

// mainPID is the service's live main process, or 0.
func mainPID(name string) int {
	b, err := os.ReadFile(filepath.Join(stateDir, name+".pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The state follows the command name's closing parenthesis.
	if i := strings.LastIndex(string(stat), ") "); i < 0 || strings.HasPrefix(string(stat[i+2:]), "Z") {
		return 0
	}
	return pid
}

func enabled(name string) bool {
	_, err := os.Stat(filepath.Join(stateDir, name+".enabled"))
	return err == nil
}

// command splits an Exec line, dropping systemd's prefixes (-, @, +, !).
func command(line string) []string {
	f := strings.Fields(line)
	if len(f) > 0 {
		f[0] = strings.TrimLeft(f[0], "-@+!")
	}
	return f
}

func start(name string, stderr io.Writer) error {
	if mainPID(name) != 0 {
		return nil
	}
	u, err := load(name)
	if err != nil {
		return err
	}
	if u.masked {
		return fmt.Errorf("failed to start %s.service: unit %s.service is masked", name, name)
	}
	for _, line := range u.props["Wants"] {
		for _, dep := range strings.Fields(line) {
			dep, ok := strings.CutSuffix(dep, ".service")
			if !ok {
				continue // targets: nothing to start
			}
			if d, err := load(dep); err != nil || d.masked {
				continue
			}
			if err := start(dep, stderr); err != nil {
				fmt.Fprintf(stderr, "wanted %s.service: %v\n", dep, err)
			}
		}
	}
	if rt := u.first("RuntimeDirectory"); rt != "" {
		mode, err := strconv.ParseUint(cmp.Or(u.first("RuntimeDirectoryMode"), "0755"), 8, 32)
		if err != nil {
			return fmt.Errorf("%s: RuntimeDirectoryMode: %w", u.path, err)
		}
		if err := os.MkdirAll("/run/"+rt, os.FileMode(mode)); err != nil {
			return err
		}
	}
	argv := command(u.first("ExecStart"))
	if len(argv) == 0 {
		return fmt.Errorf("%s: no ExecStart", u.path)
	}
	env := os.Environ()
	for _, e := range u.props["Environment"] {
		env = append(env, strings.Fields(e)...)
	}
	notifyPath := filepath.Join(stateDir, name+".notify")
	_ = os.Remove(notifyPath)
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer notify.Close()
	log, err := os.OpenFile(filepath.Join(stateDir, name+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(env, "NOTIFY_SOCKET="+notifyPath)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("job for %s.service failed: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(stateDir, name+".pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		return err
	}
	if u.first("Type") != "notify" {
		return cmd.Process.Release()
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	ready := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := notify.Read(buf)
			if err != nil {
				return
			}
			for _, l := range strings.Split(string(buf[:n]), "\n") {
				if l == "READY=1" {
					close(ready)
					return
				}
			}
		}
	}()
	select {
	case <-ready:
		return nil
	case err := <-exited:
		return fmt.Errorf("job for %s.service failed: %v", name, err)
	case <-time.After(90 * time.Second):
		_ = stop(name)
		return fmt.Errorf("job for %s.service timed out", name)
	}
}

func stop(name string) error {
	pid := mainPID(name)
	if pid == 0 {
		return nil
	}
	u, err := load(name)
	if err != nil {
		return err
	}
	timeout := 90 * time.Second
	if v := u.first("TimeoutStopSec"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			timeout = d
		}
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for mainPID(name) != 0 {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if rt := u.first("RuntimeDirectory"); rt != "" {
		return os.RemoveAll("/run/" + rt)
	}
	return nil
}

func reload(name string, stdout, stderr io.Writer) int {
	if mainPID(name) == 0 {
		fmt.Fprintf(stderr, "%s.service is not active, cannot reload.\n", name)
		return 7
	}
	u, err := load(name)
	if err != nil {
		return report(stderr, err)
	}
	argv := command(u.first("ExecReload"))
	if len(argv) == 0 {
		return 0
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			fmt.Fprintf(stderr, "Job for %s.service failed: ExecReload exited %d\n", name, ee.ExitCode())
			return 1
		}
		return report(stderr, err)
	}
	return 0
}

// show prints the properties Ansible's systemd module reads.
func show(name string, stdout io.Writer) int {
	lines := []string{"Id=" + name + ".service", "Names=" + name + ".service"}
	u, err := load(name)
	switch {
	case err != nil:
		lines = append(lines, "LoadState=not-found", "ActiveState=inactive", "SubState=dead")
	case u.masked:
		lines = append(lines, "LoadState=masked", "ActiveState=inactive", "SubState=dead", "UnitFileState=masked")
	default:
		pid := mainPID(name)
		active, sub, state := "inactive", "dead", "disabled"
		if pid != 0 {
			active, sub = "active", "running"
		}
		if enabled(name) {
			state = "enabled"
		}
		lines = append(lines, "LoadState=loaded", "FragmentPath="+u.path, "ActiveState="+active, "SubState="+sub,
			"MainPID="+strconv.Itoa(pid), "UnitFileState="+state)
	}
	fmt.Fprintln(stdout, strings.Join(lines, "\n"))
	return 0
}
