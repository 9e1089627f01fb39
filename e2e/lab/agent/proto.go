package agent

import "time"

// Request asks the agent to run one shell command, or to cancel a running one.
// Frames are single-line JSON objects, one per line, in both directions.
type Request struct {
	// ID is chosen by the client and echoed in the Response; unique per connection.
	ID uint64 `json:"id"`
	// Cancel, when set, asks the agent to kill the running request with this ID.
	Cancel bool `json:"cancel,omitempty"`
	// Cmd is passed to /bin/sh -c.
	Cmd string `json:"cmd,omitempty"`
	// Env is appended to the agent's environment ("KEY=value").
	Env []string `json:"env,omitempty"`
	// Dir is the working directory; empty means "/".
	Dir string `json:"dir,omitempty"`
	// Stdin is fed to the command's standard input.
	Stdin []byte `json:"stdin,omitempty"`
	// Timeout bounds the command; zero means DefaultTimeout. On expiry the
	// command's whole process group is killed.
	Timeout time.Duration `json:"timeout,omitempty"`
}

// Response reports how a command ended.
type Response struct {
	ID     uint64 `json:"id"`
	Stdout []byte `json:"stdout,omitempty"`
	Stderr []byte `json:"stderr,omitempty"`
	// Exit is the exit status; -1 when the command was killed or did not start.
	Exit int `json:"exit"`
	// Err describes a failure to start, a timeout or a cancel; empty otherwise.
	Err string `json:"err,omitempty"`
	// TimedOut is set when Timeout expired.
	TimedOut bool          `json:"timed_out,omitempty"`
	Elapsed  time.Duration `json:"elapsed"`
}

// DefaultTimeout bounds requests that carry no timeout.
const DefaultTimeout = 60 * time.Second

// MaxOutput caps the bytes kept per stream; the rest is dropped and noted.
const MaxOutput = 8 << 20

// PortName is the virtio-serial port name the agent listens on in the guest.
const PortName = "lab.agent"
