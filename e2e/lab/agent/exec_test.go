package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestExecute(t *testing.T) {
	tests := []struct {
		name string
		req  Request
		want Response
	}{
		{"stdout", Request{ID: 1, Cmd: "echo hello"}, Response{ID: 1, Stdout: []byte("hello\n")}},
		{"stderr and exit", Request{ID: 2, Cmd: "echo oops >&2; exit 3"}, Response{ID: 2, Stderr: []byte("oops\n"), Exit: 3}},
		{"env", Request{ID: 3, Cmd: `printf %s "$LABX"`, Env: []string{"LABX=y"}}, Response{ID: 3, Stdout: []byte("y")}},
		{"stdin", Request{ID: 4, Cmd: "cat", Stdin: []byte("in")}, Response{ID: 4, Stdout: []byte("in")}},
		{"dir", Request{ID: 5, Cmd: "pwd", Dir: "/tmp"}, Response{ID: 5, Stdout: []byte("/tmp\n")}},
		{"default dir", Request{ID: 6, Cmd: "pwd"}, Response{ID: 6, Stdout: []byte("/\n")}},
		{"not found", Request{ID: 7, Cmd: "exec /nonexistent/x 2>/dev/null"}, Response{ID: 7, Exit: 127}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Execute(context.Background(), tc.req)
			got.Elapsed = 0
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Execute (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExecuteTimeoutKillsGroup(t *testing.T) {
	start := time.Now()
	got := Execute(context.Background(), Request{ID: 1, Cmd: "sleep 30 & sleep 30", Timeout: 200 * time.Millisecond})
	if !got.TimedOut || got.Exit != -1 || !strings.Contains(got.Err, "timed out") {
		t.Errorf("Execute = %+v, want timed out", got)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("Execute took %v, want prompt kill", el)
	}
}

func TestExecuteBackgroundHoldingPipe(t *testing.T) {
	// A child left running with our stdout must not hang the request forever.
	got := Execute(context.Background(), Request{ID: 1, Cmd: "echo ok; (sleep 20 &)", Timeout: 10 * time.Second})
	if got.Exit != 0 || string(got.Stdout) != "ok\n" {
		t.Errorf("Execute = %+v, want exit 0 and ok", got)
	}
}

func TestCappedOutput(t *testing.T) {
	var c capped
	big := strings.Repeat("x", MaxOutput+10)
	if n, err := c.Write([]byte(big)); n != len(big) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	out := c.bytes()
	if !strings.HasSuffix(string(out), "[agent: 10 bytes dropped]\n") {
		t.Errorf("capped output tail = %q", out[len(out)-40:])
	}
}
