package kernel

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/google/nftables"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// nflogConfig is one NFLOG group subscription. The hairpin trigger and the
// multicast capture each bind their own group through listenNFLOG.
type nflogConfig struct {
	netns   int
	group   uint16
	copyLen uint32 // bytes of each packet copied to userspace
	chanLen int
}

// nflogPacket is one logged packet as a conversion sees it: payload is
// valid only during the call (the reader reuses its buffer); inDev is 0
// and stamp zero when the kernel sent none.
type nflogPacket struct {
	inDev   uint32
	payload []byte
	stamp   time.Time
}

// NFLOG's netlink protocol (linux/netfilter/nfnetlink_log.h): the message
// types of subsystem NFNL_SUBSYS_ULOG, the attributes of a logged packet
// and of a configuration request.
const (
	nfulnlMsgPacket = 0
	nfulnlMsgConfig = 1

	nfulaTimestamp  = 3
	nfulaIfindexIn  = 4
	nfulaPayload    = 9
	nfulaCfgCmd     = 1
	nfulaCfgMode    = 2
	nfulaCfgQThresh = 5
	nfulnlCfgBind   = 1
	nfulnlCopyPkt   = 2

	nfgenmsgLen = 4
	// nflogBufLen holds the largest message one logged packet makes
	// (copy ranges are 16-bit).
	nflogBufLen = 1<<16 + 4096
)

// listenNFLOG binds to an NFLOG group (queue threshold 1: each packet is
// delivered at once) and converts every logged packet with conv. Packets
// conv refuses, and packets the consumer is too slow for, are counted in
// dropped. The channel is closed after ctx ends.
//
// One goroutine reads the socket through the runtime's poller, one
// recvfrom per message into a buffer it reuses, everything queued before
// it waits again, and parses only the attributes conv needs: no
// allocation per packet beyond what conv keeps.
func listenNFLOG[T any](ctx context.Context, cfg nflogConfig, log *zap.Logger, dropped *atomic.Int64,
	conv func(nflogPacket) (T, bool)) (<-chan T, error) {
	obj := fmt.Sprintf("group %d", cfg.group)
	f, rc, err := openNFLOG(cfg.netns)
	if err != nil {
		return nil, opErr("open NFLOG", obj, err)
	}
	if err := nflogBind(rc, cfg); err != nil {
		_ = f.Close()
		return nil, opErr("bind NFLOG", obj, err)
	}
	out := make(chan T, cfg.chanLen)
	go func() {
		<-ctx.Done()
		_ = f.Close() // wakes the reader
	}()
	go func() {
		defer close(out)
		buf := make([]byte, nflogBufLen)
		handle := func(h nlHeader, data []byte) {
			if h.typ != unix.NFNL_SUBSYS_ULOG<<8|nfulnlMsgPacket {
				return
			}
			p, ok := parseNFLOGPacket(data)
			if !ok {
				dropped.Add(1)
				return
			}
			v, ok := conv(p)
			if !ok {
				dropped.Add(1)
				return
			}
			select {
			case out <- v:
			default:
				dropped.Add(1)
			}
		}
		for {
			n, err := nflogRecv(rc, buf)
			switch {
			case ctx.Err() != nil:
				return
			case errors.Is(err, unix.ENOBUFS):
				// The socket overflowed: messages were lost, keep receiving.
				log.Warn("kernel: NFLOG receive error", zap.Uint16("group", cfg.group), zap.Error(err))
				continue
			case err != nil:
				log.Error("kernel: NFLOG reader stopped", zap.Uint16("group", cfg.group), zap.Error(err))
				return
			}
			if err := eachNLMsg(buf[:n], handle); err != nil {
				log.Warn("kernel: NFLOG message", zap.Uint16("group", cfg.group), zap.Error(err))
			}
		}
	}()
	return out, nil
}

// openNFLOG opens a non-blocking NETLINK_NETFILTER socket in netns (0:
// current) under the runtime's poller.
func openNFLOG(netns int) (*os.File, syscall.RawConn, error) {
	var fd int
	err := inNetNS(netns, func() error {
		var serr error
		fd, serr = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_NETFILTER)
		return serr
	})
	if err != nil {
		return nil, nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		_ = unix.Close(fd)
		return nil, nil, err
	}
	f := os.NewFile(uintptr(fd), "nflog")
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return nil, nil, err
	}
	return f, rc, nil
}

// nflogBind binds the socket to cfg's group with one configuration
// request (the kernel applies a request's command before its other
// attributes): copy the packet up to copyLen, queue threshold 1. It waits
// for the kernel's acknowledgement.
func nflogBind(rc syscall.RawConn, cfg nflogConfig) error {
	ne, be := binary.NativeEndian, binary.BigEndian
	const seq = 1
	b := appendNLHeader(nil, 0, unix.NFNL_SUBSYS_ULOG<<8|nfulnlMsgConfig, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq) // length set below
	b = append(b, unix.AF_UNSPEC, unix.NFNETLINK_V0)
	b = be.AppendUint16(b, cfg.group)
	b = appendNLAttr(b, nfulaCfgCmd, []byte{nfulnlCfgBind})
	b = appendNLAttr(b, nfulaCfgMode, append(be.AppendUint32(nil, cfg.copyLen), nfulnlCopyPkt, 0))
	b = appendNLAttr(b, nfulaCfgQThresh, be.AppendUint32(nil, 1))
	ne.PutUint32(b[0:4], uint32(len(b)))
	var werr error
	if err := rc.Write(func(fd uintptr) bool {
		_, werr = unix.Write(int(fd), b)
		return werr != unix.EAGAIN
	}); err != nil {
		return err
	}
	if werr != nil {
		return werr
	}
	buf := make([]byte, 8192)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		n, err := nflogRecv(rc, buf)
		if err != nil {
			return err
		}
		acked, ackErr := false, error(nil)
		if err := eachNLMsg(buf[:n], func(h nlHeader, data []byte) {
			if h.typ == unix.NLMSG_ERROR && h.seq == seq {
				acked, ackErr = true, ackError(data, false)
			}
		}); err != nil {
			return err
		}
		if acked {
			return ackErr
		}
	}
	return errors.New("no acknowledgement")
}

// nflogRecv reads one datagram, waiting in the poller while none is
// queued. A datagram larger than buf is an error (MSG_TRUNC).
func nflogRecv(rc syscall.RawConn, buf []byte) (int, error) {
	var (
		n     uintptr
		errno syscall.Errno
	)
	err := rc.Read(func(fd uintptr) bool {
		n, _, errno = unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)),
			unix.MSG_DONTWAIT|unix.MSG_TRUNC, 0, 0)
		return errno != unix.EAGAIN && errno != unix.EINTR
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, errno
	case int(n) > len(buf):
		return 0, fmt.Errorf("netlink message of %d bytes truncated to %d", n, len(buf))
	}
	return int(n), nil
}

// parseNFLOGPacket reads the attributes of one NFULNL_MSG_PACKET message
// (data: from its nfgenmsg on). A malformed message is refused.
func parseNFLOGPacket(data []byte) (nflogPacket, bool) {
	var p nflogPacket
	if len(data) < nfgenmsgLen {
		return p, false
	}
	be := binary.BigEndian
	ok := eachNLAttr(data[nfgenmsgLen:], func(typ uint16, v []byte) {
		switch typ {
		case nfulaIfindexIn:
			if len(v) >= 4 {
				p.inDev = be.Uint32(v)
			}
		case nfulaPayload:
			p.payload = v
		case nfulaTimestamp:
			if len(v) >= 16 {
				p.stamp = time.Unix(int64(be.Uint64(v[0:8])), int64(be.Uint64(v[8:16]))*1000)
			}
		}
	})
	if !ok {
		return nflogPacket{}, false
	}
	return p, true
}

// nftConn opens an nftables connection in the namespace netns (0: current).
func nftConn(netns int) (*nftables.Conn, error) {
	var opts []nftables.ConnOption
	if netns > 0 {
		opts = append(opts, nftables.WithNetNSFd(netns))
	}
	return nftables.New(opts...)
}

// nftBatch queues objects on an nftables connection in netns and sends them
// as one netlink batch (one transaction); errors name op and object.
func nftBatch(netns int, op, object string, queue func(cc *nftables.Conn) error) error {
	cc, err := nftConn(netns)
	if err != nil {
		return opErr(op, object, err)
	}
	if err := queue(cc); err != nil {
		return opErr(op, object, err)
	}
	return opErr(op, object, cc.Flush())
}
