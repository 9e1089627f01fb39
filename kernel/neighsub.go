package kernel

import (
	"encoding/binary"
	"fmt"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// neighSubscribe is netlink.NeighSubscribeWithOptions for the miss watch,
// with one difference: the socket drops, in the kernel, the notifications
// of changes made through k's batch socket. Those are the registrations
// the controller writes: during a burst one notification per entry, each
// copied to this socket, woken for and decoded only to be ignored (what
// the miss watch wants are the kernel's own misses and changes made
// behind dmvpnd's back, which keep their sender's port id or 0). The
// dump of existing entries (ListExisting) asks for IPv4 and IPv6 only:
// the tunnel's entries, no bridge FDB.
func (k *Kernel) neighSubscribe(ch chan<- netlink.NeighUpdate, done <-chan struct{}, opts netlink.NeighSubscribeOptions) error {
	ns := netns.None()
	if opts.Namespace != nil {
		ns = *opts.Namespace
	}
	s, err := nl.SubscribeAt(ns, netns.None(), unix.NETLINK_ROUTE, unix.RTNLGRP_NEIGH)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		s.Close()
		return err
	}
	if port, ok := k.batchPortID(); ok {
		if err := ignorePort(s.GetFd(), port); err != nil {
			return fail(fmt.Errorf("filter own notifications: %w", err))
		}
	}
	if opts.ReceiveBufferSize != 0 {
		if err := s.SetReceiveBufferSize(opts.ReceiveBufferSize, opts.ReceiveBufferForceSize); err != nil {
			return fail(err)
		}
	}
	if opts.ListExisting {
		req := nl.NewNetlinkRequest(unix.RTM_GETNEIGH, unix.NLM_F_DUMP)
		req.AddData(&netlink.Ndmsg{Family: unix.AF_UNSPEC})
		if err := s.Send(req); err != nil {
			return fail(err)
		}
	}
	go func() {
		<-done
		s.Close()
	}()
	report := func(err error) {
		if opts.ErrorCallback != nil {
			opts.ErrorCallback(err)
		}
	}
	go func() {
		defer close(ch)
		for {
			msgs, from, err := s.Receive()
			if err != nil {
				report(err)
				return
			}
			if from.Pid != nl.PidKernel {
				continue // unicast from another process: not the kernel's
			}
			for _, m := range msgs {
				switch m.Header.Type {
				case unix.NLMSG_DONE:
					continue
				case unix.NLMSG_ERROR:
					if len(m.Data) < 4 {
						report(fmt.Errorf("short netlink error message"))
						return
					}
					if e := int32(binary.NativeEndian.Uint32(m.Data)); e != 0 {
						report(syscall.Errno(-e))
						return
					}
					continue
				}
				n, err := netlink.NeighDeserialize(m.Data)
				if err != nil {
					report(err)
					return
				}
				ch <- netlink.NeighUpdate{Type: m.Header.Type, Neigh: *n}
			}
		}
	}()
	return nil
}

// batchPortID opens the batch socket if it is not open yet and returns its
// port id; false when either fails (the miss watch then hears our own
// changes too, which costs CPU and loses nothing).
func (k *Kernel) batchPortID() (uint32, bool) {
	k.batchMu.Lock()
	defer k.batchMu.Unlock()
	if err := k.openBatch(); err != nil {
		return 0, false
	}
	bs, ok := k.batch.conn.(*batchSocket)
	if !ok {
		return 0, false
	}
	port, err := bs.portID()
	return port, err == nil
}

// ignorePort attaches a classic BPF socket filter to the netlink socket fd
// that drops every message whose nlmsg_pid is port: the notifications of
// changes requested through that port. Kernel notifications carry the
// requester's port (0 for changes the kernel makes itself) and come one
// message per datagram; a dump's datagrams carry this socket's own port.
func ignorePort(fd int, port uint32) error {
	// A BPF word load reads network byte order; nlmsg_pid is in host order.
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], port)
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 12}, // nlmsghdr.nlmsg_pid
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: binary.BigEndian.Uint32(b[:])},
		{Code: unix.BPF_RET | unix.BPF_K, K: 0},          // drop
		{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff}, // keep
	}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})
}
