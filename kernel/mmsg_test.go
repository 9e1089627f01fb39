package kernel

import (
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRecvAfterShortBatch: a packet queued after a short batch is read by
// the next read even when the runtime took its readiness edge while
// nothing was reading (here: while the test slept, the idle scheduler
// waited in the poller and consumed it). recv used to skip its first
// recvmmsg after a short batch and wait for an edge that had already
// come: the packet stayed queued until another arrived. The vector is
// the one NHRPConn and MulticastConn read with, on a datagram socket
// pair (recv only passes the socket's descriptor to recvmmsg).
func TestRecvAfterShortBatch(t *testing.T) {
	// A datagram socket pair: no address or interface needed (the lab
	// guest runs this package's tests with its loopback down).
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "pair")
		defer f.Close()
		c, err := net.FilePacketConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c.(*net.UnixConn)
	}
	a, b := conn(fds[0]), conn(fds[1])
	defer a.Close()
	defer b.Close()
	rc, err := a.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	const room = 4
	var v mmsgVec
	v.grow(room)
	v.fn = v.recv
	bufs := make([][]byte, room)
	read := func() ([]string, error) {
		for i := range bufs {
			bufs[i] = make([]byte, 64)
			v.iovs[i].Base = &bufs[i][0]
			v.iovs[i].SetLen(len(bufs[i]))
			v.msgs[i].hdr.Namelen = unix.SizeofSockaddrLinklayer
			v.msgs[i].len = 0
		}
		v.n, v.done, v.err = room, 0, nil
		err := rc.Read(v.fn)
		if err == nil {
			err = v.err
		}
		var got []string
		for i := range v.done {
			got = append(got, string(bufs[i][:v.msgs[i].len]))
		}
		return got, err
	}
	if _, err := b.Write([]byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := a.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if got, err := read(); err != nil || len(got) != 1 || got[0] != "one" {
		t.Fatalf("first read: %q, %v; want [one] (a short batch)", got, err)
	}
	if _, err := b.Write([]byte("two")); err != nil {
		t.Fatal(err)
	}
	// Nothing reads now: the runtime's poller reports the packet to no
	// waiter, which only marks the descriptor ready.
	time.Sleep(100 * time.Millisecond)
	if err := a.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if got, err := read(); err != nil || len(got) != 1 || got[0] != "two" {
		t.Fatalf("read after a short batch: %q, %v; want [two], queued before the read began", got, err)
	}
}
