package kernel

import (
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// sockBuf names one of a socket's buffers: the option that sets it beyond
// net.core.{r,w}mem_max (root only) and the plain one.
type sockBuf struct {
	force, plain int
	name         string
}

var (
	rcvBuf = sockBuf{force: unix.SO_RCVBUFFORCE, plain: unix.SO_RCVBUF, name: "receive buffer"}
	sndBuf = sockBuf{force: unix.SO_SNDBUFFORCE, plain: unix.SO_SNDBUF, name: "send buffer"}
)

// set sets the buffer of fd to size: with the force option as root, else
// with the plain one (capped by the sysctl).
func (b sockBuf) set(fd, size int) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, b.force, size); err == nil {
		return nil
	}
	return unix.SetsockoptInt(fd, unix.SOL_SOCKET, b.plain, size)
}

// listenTunnel opens an AF_PACKET datagram socket for etherType (0: none
// received) on the tunnel ifindex in the namespace netNS (0: current) and
// sets its buffer buf to size. what names the socket in errors ("NHRP
// socket").
func listenTunnel(what string, netNS, ifindex int, etherType uint16, buf sockBuf, size int) (*packet.Conn, syscall.RawConn, error) {
	obj := fmt.Sprintf("ifindex %d", ifindex)
	if ifindex <= 0 {
		return nil, nil, opErr("open "+what, obj, errors.New("invalid ifindex"))
	}
	var c *packet.Conn
	err := inNetNS(netNS, func() error {
		var lerr error
		c, lerr = packet.Listen(&net.Interface{Index: ifindex}, packet.Datagram, int(etherType), nil)
		return lerr
	})
	if err != nil {
		return nil, nil, opErr("open "+what, obj, err)
	}
	rc, err := c.SyscallConn()
	if err != nil {
		_ = c.Close()
		return nil, nil, opErr("open "+what, obj, err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = buf.set(int(fd), size) }); err != nil || serr != nil {
		_ = c.Close()
		return nil, nil, opErr("set "+what+" "+buf.name, obj, errors.Join(err, serr))
	}
	return c, rc, nil
}
