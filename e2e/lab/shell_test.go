package lab

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestShell boots a lab and runs the shell script named by DMVPND_LAB_SHELL
// in it, printing the output: a quick way to try things in the guest.
//
//	DMVPND_LAB_TESTS=1 DMVPND_LAB_SHELL=/tmp/x.sh go test ./e2e/lab -run TestShell -v
func TestShell(t *testing.T) {
	script := os.Getenv("DMVPND_LAB_SHELL")
	if script == "" {
		t.Skip("set DMVPND_LAB_SHELL to a script to run in the lab")
	}
	b, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	l := New(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := l.Exec(ctx, string(b))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("exit %d\nstdout:\n%s\nstderr:\n%s", res.Exit, res.Stdout, res.Stderr)
}
