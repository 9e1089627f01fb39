package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/dmvpnd/dmvpnd/e2e/lab/agent"
)

// GoTestResult is the outcome of a package's test binary run in the lab.
type GoTestResult struct {
	// Binary is empty when the package has no tests.
	Binary string
	// Log holds the test binary's combined output (DIR/gotest/NAME.log).
	Log    string
	Output string
	Exit   int
}

// GoTest compiles pkg's tests on the host (go test -c, e.g. pkg "./kernel"),
// runs the binary in the lab as root with DMVPND_PRIVILEGED=1 and -test.v
// in the package's directory, and returns its output. Exit is the binary's
// exit status; the error reports build and transport failures only.
func (l *Lab) GoTest(ctx context.Context, pkg string, args ...string) (GoTestResult, error) {
	name := strings.ReplaceAll(strings.Trim(pkg, "./"), "/", "_")
	bin := filepath.Join(l.dir, "gotest", name+".test")
	res := GoTestResult{Log: filepath.Join(l.dir, "gotest", name+".log")}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return res, fmt.Errorf("lab: %w", err)
	}
	build := exec.CommandContext(ctx, "go", "test", "-c", "-o", bin, pkg)
	build.Dir = l.root
	if out, err := build.CombinedOutput(); err != nil {
		return res, fmt.Errorf("lab: go test -c %s: %w: %s", pkg, err, out)
	}
	if _, err := os.Stat(bin); err != nil {
		// go test -c writes nothing for a package without test files.
		return res, nil
	}
	res.Binary = bin
	pkgDir := filepath.Join(l.root, filepath.FromSlash(pkg))
	cmd := goTestCommand(pkgDir, bin, res.Log, args)
	r, err := l.ExecRequest(ctx, agent.Request{Cmd: cmd})
	res.Output = string(r.Stdout)
	res.Exit = r.Exit
	if err != nil {
		return res, err
	}
	if r.Err != "" {
		return res, fmt.Errorf("lab: %s: %s", pkg, r.Err)
	}
	return res, nil
}

// goTestCommand renders the command that runs binary in pkgDir as a
// privileged test; the shell's exit status is the binary's.
func goTestCommand(pkgDir, binary, log string, args []string) string {
	return fmt.Sprintf("cd %s && DMVPND_PRIVILEGED=1 %s -test.v %s > %s 2>&1; st=$?; cat %s; exit $st",
		shellQuote(pkgDir), shellQuote(binary), quoteAll(args), shellQuote(log), shellQuote(log))
}

func quoteAll(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

// MustGoTest runs GoTest and fails t when the build fails or the test
// binary exits non-zero; the output is logged either way.
func (l *Lab) MustGoTest(ctx context.Context, pkg string, args ...string) GoTestResult {
	l.t.Helper()
	res, err := l.GoTest(ctx, pkg, args...)
	if err != nil {
		l.t.Fatal(err)
	}
	if res.Binary == "" {
		l.t.Logf("lab: %s has no tests", pkg)
		return res
	}
	l.t.Logf("lab: %s in the lab (log %s):\n%s", pkg, res.Log, res.Output)
	if res.Exit != 0 {
		l.t.Fatalf("lab: %s tests failed in the lab (exit %d)", pkg, res.Exit)
	}
	return res
}
