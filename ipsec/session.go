package ipsec

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/strongswan/govici/vici"
)

// ErrConnection wraps failures to talk to charon (socket gone, daemon
// restarted); the Manager reconnects when it sees one.
var ErrConnection = errors.New("ipsec: vici connection failed")

// CommandError is charon refusing a command (success = no).
type CommandError struct {
	Command string
	Msg     string
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("ipsec: %s: %s", e.Command, e.Msg)
}

// eventBuffer sizes the channel govici writes events to; govici drops
// events when it is full (a resync with list-sas repairs the state).
const eventBuffer = 1024

// listBuffer bounds the SAs one list-sas can return (see link.listSAs).
const listBuffer = 16384

// link is one connection to charon: a session for commands and a
// dedicated session for events.
type link struct {
	cmd, ev *vici.Session
	events  chan vici.Event
	lists   chan vici.Event // list-sa, list-conn and list-cert events streamed to the command session
}

// dial opens the two sessions, over cfg.Dial when it is set and to the
// socket at cfg.SocketPath otherwise.
func dial(cfg *Config) (*link, error) {
	opts := []vici.SessionOption{vici.WithSocketPath(cfg.SocketPath)}
	if cfg.Dial != nil {
		d := cfg.Dial
		opts = append(opts, vici.WithDialContext(func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d(ctx)
		}))
	}
	cmd, err := vici.NewSession(opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConnection, err)
	}
	ev, err := vici.NewSession(opts...)
	if err != nil {
		_ = cmd.Close()
		return nil, fmt.Errorf("%w: %v", ErrConnection, err)
	}
	l := &link{cmd: cmd, ev: ev, events: make(chan vici.Event, eventBuffer), lists: make(chan vici.Event, listBuffer)}
	ev.NotifyEvents(l.events)
	if err := ev.Subscribe(subscribedEvents...); err != nil {
		l.close()
		return nil, fmt.Errorf("%w: subscribe: %v", ErrConnection, err)
	}
	cmd.NotifyEvents(l.lists)
	if err := cmd.Subscribe(evListSA, evListConn, evListCert); err != nil {
		l.close()
		return nil, fmt.Errorf("%w: subscribe: %v", ErrConnection, err)
	}
	return l, nil
}

func (l *link) close() {
	_ = l.cmd.Close()
	_ = l.ev.Close()
}

// call runs one command. A nil response with an error is a connection
// failure; a response with success = no is a *CommandError.
func (l *link) call(ctx context.Context, cmd string, in *vici.Message) (*vici.Message, error) {
	resp, err := l.cmd.Call(ctx, cmd, in)
	if err != nil {
		if resp != nil {
			msg := str(resp, "errmsg")
			if msg == "" {
				msg = strings.TrimPrefix(err.Error(), "command failed: ")
			}
			return resp, &CommandError{Command: cmd, Msg: msg}
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrConnection, cmd, err)
	}
	return resp, nil
}

// listSAs runs list-sas and returns the streamed list-sa messages.
func (l *link) listSAs(ctx context.Context) ([]*vici.Message, error) {
	return l.stream(ctx, cmdListSAs, evListSA)
}

// stream runs a listing command (list-sas, list-conns, list-certs) and
// returns the messages of event it streamed.
//
// govici's CallStreaming can lose the last streamed events: its reader
// selects at random between a queued event and the already queued final
// response. Instead, the command session stays registered for list-sa and
// a plain Call is made: govici's reader hands every event to l.lists
// before it reads the response, so once Call returns all events are
// queued and can be drained.
func (l *link) stream(ctx context.Context, cmd, event string) ([]*vici.Message, error) {
	for drained := false; !drained; {
		select {
		case _, ok := <-l.lists: // stale, from an earlier aborted call
			if !ok { // closed with the session: draining would spin
				return nil, fmt.Errorf("%w: %s: session closed", ErrConnection, cmd)
			}
		default:
			drained = true
		}
	}
	if _, err := l.call(ctx, cmd, nil); err != nil {
		return nil, err
	}
	var out []*vici.Message
	for {
		select {
		case ev, ok := <-l.lists:
			if !ok {
				return out, fmt.Errorf("%w: %s: session closed", ErrConnection, cmd)
			}
			if ev.Name == event {
				out = append(out, ev.Message)
			}
		default:
			return out, nil
		}
	}
}
