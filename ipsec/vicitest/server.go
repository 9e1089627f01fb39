package vicitest

import (
	"errors"
	"net"
	"os"
	"slices"
	"sync"
	"time"
)

// Command is one CMD_REQUEST received by the server.
type Command struct {
	Name    string
	Message *Message
}

// HandlerFunc answers a command. stream holds events sent to the client
// before the reply (used by streaming commands such as list-sas).
type HandlerFunc func(req *Message) (stream []*Message, reply *Message)

// streamEvents maps streaming commands to the event they stream.
var streamEvents = map[string]string{
	"list-sas":      "list-sa",
	"list-conns":    "list-conn",
	"list-certs":    "list-cert",
	"list-policies": "list-policy",
	"initiate":      "control-log",
	"terminate":     "control-log",
}

// knownEvents are the event names a client may register for.
var knownEvents = []string{
	"ike-updown", "child-updown", "ike-rekey", "child-rekey", "ike-update", "log",
	"control-log", "list-sa", "list-conn", "list-cert", "list-policy",
}

// Server is a fake charon VICI endpoint on a unix socket. It speaks the real
// wire protocol, records every command, tracks loaded connections and lets a
// test emit events. It can be stopped and started again on the same path to
// simulate charon restarting.
type Server struct {
	path string
	pipe bool // listens on in-memory pipes (NewPipeServer), not on path

	mu       sync.Mutex
	ln       net.Listener
	clients  map[*client]struct{}
	cmds     []Command
	handlers map[string]HandlerFunc
	conns    []string            // connection names loaded via load-conn
	confs    map[string]*Message // connection name -> its load-conn section
	creds    credStore
	refuse   map[string]string
	sas      map[string]string // IKE SA unique id -> connection, from ike-updown
	changed  chan struct{}
	accepts  int
}

type client struct {
	conn   net.Conn
	wmu    sync.Mutex
	events map[string]bool
}

// NewServer listens on path and serves until Stop or Close.
func NewServer(path string) (*Server, error) {
	s := newServer(path)
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

func newServer(path string) *Server {
	return &Server{
		path:     path,
		clients:  map[*client]struct{}{},
		handlers: map[string]HandlerFunc{},
		refuse:   map[string]string{},
		changed:  make(chan struct{}),
		confs:    map[string]*Message{},
		sas:      map[string]string{},
	}
}

// Path returns the socket path (empty for a pipe Server).
func (s *Server) Path() string { return s.path }

// Start listens again after Stop (a "restarted charon": loaded state is gone).
func (s *Server) Start() error {
	var ln net.Listener
	if s.pipe {
		ln = newPipeListener()
	} else {
		_ = os.Remove(s.path)
		var err error
		if ln, err = net.Listen("unix", s.path); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.ln = ln
	s.conns = nil
	s.confs = map[string]*Message{}
	s.sas = map[string]string{}
	s.creds = credStore{}
	s.mu.Unlock()
	go s.accept(ln)
	return nil
}

// Stop closes the listener and every client connection, and forgets loaded
// connections, as charon stopping does.
func (s *Server) Stop() {
	s.mu.Lock()
	ln := s.ln
	s.ln = nil
	cl := make([]*client, 0, len(s.clients))
	for c := range s.clients {
		cl = append(cl, c)
	}
	s.clients = map[*client]struct{}{}
	s.conns = nil
	s.confs = map[string]*Message{}
	s.sas = map[string]string{}
	s.creds = credStore{}
	s.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	for _, c := range cl {
		_ = c.conn.Close()
	}
	if !s.pipe {
		_ = os.Remove(s.path)
	}
	s.notify()
}

// Close is Stop.
func (s *Server) Close() { s.Stop() }

// Handle overrides the answer for cmd.
func (s *Server) Handle(cmd string, h HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[cmd] = h
}

// RefuseConn makes load-conn of the named connection fail with errmsg,
// as charon does for a connection it cannot parse or load; an empty
// errmsg accepts it again.
func (s *Server) RefuseConn(name, errmsg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if errmsg == "" {
		delete(s.refuse, name)
		return
	}
	s.refuse[name] = errmsg
}

// Commands returns a copy of all recorded commands.
func (s *Server) Commands() []Command {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.cmds)
}

// ResetCommands forgets recorded commands.
func (s *Server) ResetCommands() {
	s.mu.Lock()
	s.cmds = nil
	s.mu.Unlock()
}

// Conns returns the names of currently loaded connections, sorted.
func (s *Server) Conns() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.conns)
	slices.Sort(out)
	return out
}

// Accepts returns how many client connections were accepted so far.
func (s *Server) Accepts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepts
}

// Subscribers returns how many connected clients registered for event.
func (s *Server) Subscribers(event string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.clients {
		if c.events[event] {
			n++
		}
	}
	return n
}

// ErrTimeout is returned by Wait when the condition did not hold in time.
var ErrTimeout = errors.New("vicitest: timed out waiting for condition")

// Wait blocks until cond holds (checked after every recorded change) or
// timeout passes.
func (s *Server) Wait(timeout time.Duration, cond func(s *Server) bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond(s) {
			return nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			if cond(s) {
				return nil
			}
			return ErrTimeout
		}
	}
}

// Emit sends an event to every client registered for name. It returns the
// number of clients it was sent to. An ike-updown event also brings the
// fake's IKE SA table up to date (up: the SA exists; down: it is gone), so
// that terminate finds the SAs a test announced, as charon's does.
func (s *Server) Emit(name string, msg *Message) int {
	s.mu.Lock()
	if name == "ike-updown" {
		s.ikeUpdown(msg)
	}
	var targets []*client
	for c := range s.clients {
		if c.events[name] {
			targets = append(targets, c)
		}
	}
	s.mu.Unlock()
	for _, c := range targets {
		c.write(&Packet{Type: EventPacket, Name: name, Message: msg})
	}
	return len(targets)
}

func (s *Server) notify() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *Server) accept(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		c := &client{conn: conn, events: map[string]bool{}}
		s.mu.Lock()
		if s.ln != ln {
			s.mu.Unlock()
			_ = conn.Close()
			return
		}
		s.clients[c] = struct{}{}
		s.accepts++
		s.mu.Unlock()
		s.notify()
		go s.serve(c)
	}
}

func (c *client) write(p *Packet) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = WritePacket(c.conn, p)
}

func (s *Server) serve(c *client) {
	defer func() {
		_ = c.conn.Close()
		s.mu.Lock()
		delete(s.clients, c)
		s.mu.Unlock()
		s.notify()
	}()
	for {
		p, err := ReadPacket(c.conn)
		if err != nil {
			return
		}
		switch p.Type {
		case EventRegister, EventUnregister:
			ok := slices.Contains(knownEvents, p.Name)
			s.mu.Lock()
			if ok {
				c.events[p.Name] = p.Type == EventRegister
			}
			s.mu.Unlock()
			if ok {
				c.write(&Packet{Type: EventConfirm})
			} else {
				c.write(&Packet{Type: EventUnknown})
			}
			s.notify()
		case CmdRequest:
			s.command(c, p)
		default:
			return // a client must not send anything else
		}
	}
}

func (s *Server) command(c *client, p *Packet) {
	s.mu.Lock()
	s.cmds = append(s.cmds, Command{Name: p.Name, Message: p.Message})
	h := s.handlers[p.Name]
	s.mu.Unlock()
	if h == nil {
		h = s.builtin(p.Name)
	}
	if h == nil {
		c.write(&Packet{Type: CmdUnknown})
		s.notify()
		return
	}
	stream, reply := h(p.Message)
	if ev, ok := streamEvents[p.Name]; ok {
		s.mu.Lock()
		registered := c.events[ev]
		s.mu.Unlock()
		if registered {
			for _, m := range stream {
				c.write(&Packet{Type: EventPacket, Name: ev, Message: m})
			}
		}
	}
	if reply == nil {
		reply = NewMessage()
	}
	c.write(&Packet{Type: CmdResponse, Message: reply})
	s.notify()
}

// Success is a reply with success = yes.
func Success() *Message { return NewMessage().Set("success", "yes") }

// Failure is a reply with success = no and errmsg.
func Failure(msg string) *Message {
	return NewMessage().Set("success", "no").Set("errmsg", msg)
}

func (s *Server) builtin(name string) HandlerFunc {
	switch name {
	case "version":
		return func(*Message) ([]*Message, *Message) {
			return nil, NewMessage().Set("daemon", "charon").Set("version", "5.9.8").
				Set("sysname", "Linux").Set("release", "fake").Set("machine", "x86_64")
		}
	case "load-conn":
		return func(req *Message) ([]*Message, *Message) {
			keys := req.Keys()
			if len(keys) != 1 || req.Section(keys[0]) == nil {
				return nil, Failure("expected one connection section")
			}
			s.mu.Lock()
			if msg, ok := s.refuse[keys[0]]; ok {
				s.mu.Unlock()
				return nil, Failure(msg)
			}
			if !slices.Contains(s.conns, keys[0]) {
				s.conns = append(s.conns, keys[0])
			}
			s.confs[keys[0]] = req.Section(keys[0])
			s.mu.Unlock()
			return nil, Success()
		}
	case "unload-conn":
		return func(req *Message) ([]*Message, *Message) {
			name := req.String("name")
			s.mu.Lock()
			defer s.mu.Unlock()
			i := slices.Index(s.conns, name)
			if i < 0 {
				return nil, Failure("configuration '" + name + "' not found")
			}
			s.conns = slices.Delete(s.conns, i, i+1)
			delete(s.confs, name)
			return nil, Success()
		}
	case "get-conns":
		return func(*Message) ([]*Message, *Message) {
			return nil, NewMessage().Set("conns", s.Conns())
		}
	case "get-algorithms":
		return func(*Message) ([]*Message, *Message) {
			return nil, NewMessage().
				Set("encryption", NewMessage().Set("AES_CBC", "aes")).
				Set("aead", NewMessage().Set("AES_GCM_16", "openssl")).
				Set("integrity", NewMessage().Set("HMAC_SHA2_384_192", "hmac")).
				Set("prf", NewMessage().Set("PRF_HMAC_SHA2_384", "hmac")).
				Set("dh", NewMessage().Set("ECP_384", "openssl").Set("MODP_3072", "gmp").Set("CURVE_25519", "openssl"))
		}
	case "list-conns":
		return func(*Message) ([]*Message, *Message) {
			s.mu.Lock()
			defer s.mu.Unlock()
			var out []*Message
			for _, name := range s.conns {
				out = append(out, listConn(name, s.confs[name]))
			}
			return out, NewMessage()
		}
	case "load-shared", "unload-shared", "get-shared", "load-key", "unload-key", "get-keys",
		"load-cert", "list-certs", "clear-creds":
		return func(req *Message) ([]*Message, *Message) {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.creds.handle(name, req)
		}
	case "list-sas", "list-policies":
		return func(*Message) ([]*Message, *Message) { return nil, NewMessage() }
	case "initiate":
		return func(req *Message) ([]*Message, *Message) {
			child := req.String("child")
			s.mu.Lock()
			defer s.mu.Unlock()
			if !s.hasChild(req.String("ike"), child) {
				return nil, Failure("CHILD_SA config '" + child + "' not found")
			}
			return nil, Success()
		}
	case "terminate":
		return func(req *Message) ([]*Message, *Message) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if !s.terminate(req.String("ike"), req.String("ike-id")) {
				return nil, Failure("no matching SAs to terminate found")
			}
			return nil, Success()
		}
	case "load-authority", "unload-authority", "reload-settings":
		return func(*Message) ([]*Message, *Message) { return nil, Success() }
	}
	return nil
}
