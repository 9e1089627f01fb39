package kernel

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync/atomic"

	"github.com/google/nftables"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// MulticastTrap captures the multicast a node sends into the tunnel (see
// MulticastConfig) and delivers each packet to userspace, which sends one
// unicast GRE copy per peer (MulticastConn).
type MulticastTrap struct {
	cfg MulticastConfig
	log *zap.Logger

	dropped atomic.Int64
}

// NewMulticastTrap validates cfg (after defaults) and returns the trap;
// nothing is installed until Install.
func NewMulticastTrap(cfg MulticastConfig, log *zap.Logger) (*MulticastTrap, error) {
	cfg = cfg.withDefaults()
	if _, err := cfg.prefixes(); err != nil {
		return nil, fmt.Errorf("kernel: multicast capture: %w", err)
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &MulticastTrap{cfg: cfg, log: log}, nil
}

func (m *MulticastTrap) object() string { return "table ip " + m.cfg.Table }

// Install replaces the capture table atomically (one netlink batch) for the
// tunnel ifindex.
func (m *MulticastTrap) Install(ifindex int) error {
	return nftBatch(m.cfg.NetNS, "install multicast capture", m.object(), func(cc *nftables.Conn) error {
		return queueMulticastInstall(cc, m.cfg, ifindex)
	})
}

// Remove deletes the capture table; a missing table is not an error.
func (m *MulticastTrap) Remove() error {
	return nftBatch(m.cfg.NetNS, "remove multicast capture", m.object(), func(cc *nftables.Conn) error {
		queueMulticastRemove(cc, m.cfg)
		return nil
	})
}

// Dropped counts captured packets lost because the consumer was too slow.
func (m *MulticastTrap) Dropped() int64 { return m.dropped.Load() }

const multicastChanLen = 256

// Packets binds to the capture's NFLOG group and delivers each captured IPv4
// packet whole, until ctx ends; then the channel is closed.
func (m *MulticastTrap) Packets(ctx context.Context) (<-chan []byte, error) {
	return listenNFLOG(ctx, nflogConfig{netns: m.cfg.NetNS, group: m.cfg.Group, copyLen: DefaultMulticastCopyLen, chanLen: multicastChanLen},
		m.log, &m.dropped, multicastFromAttr)
}

func multicastFromAttr(a nflogPacket) ([]byte, bool) {
	if len(a.payload) < 20 || a.payload[0]>>4 != 4 {
		return nil, false
	}
	p := append([]byte(nil), a.payload...)
	completeUDPChecksum(p)
	return p, true
}

// completeUDPChecksum writes the full UDP checksum of an unfragmented IPv4
// UDP packet. A packet logged on output may carry a partial checksum: the
// tunnel offers checksum offload (NETIF_F_HW_CSUM), so the stack leaves the
// pseudo-header sum for the device to complete, and NFLOG copies the
// packet as it is. Protocols that checksum in userspace over raw sockets
// (OSPF, EIGRP, PIM, VRRP) and IGMP are complete already and left alone.
func completeUDPChecksum(p []byte) {
	ihl := int(p[0]&0x0f) * 4
	if p[9] != unix.IPPROTO_UDP || ihl < 20 || len(p) < ihl+8 || binary.BigEndian.Uint16(p[6:8])&0x3fff != 0 {
		return
	}
	total := int(binary.BigEndian.Uint16(p[2:4]))
	if total > len(p) || total < ihl+8 {
		return
	}
	udp := p[ihl:total]
	if int(binary.BigEndian.Uint16(udp[4:6])) != len(udp) {
		return
	}
	udp[6], udp[7] = 0, 0
	sum := uint32(unix.IPPROTO_UDP) + uint32(len(udp))
	sum = onesSum(sum, p[12:20])
	sum = onesSum(sum, udp)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	cs := ^uint16(sum)
	if cs == 0 {
		cs = 0xffff // RFC 768: a computed zero is sent as all ones
	}
	binary.BigEndian.PutUint16(udp[6:8], cs)
}

func onesSum(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}
