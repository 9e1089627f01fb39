package nhrpcap

import (
	"encoding/binary"
	"io"
	"time"
)

// Classic libpcap file format (tcpdump.org/manpages/pcap-savefile.5).
type pcapReader struct {
	r        io.Reader
	order    binary.ByteOrder
	nanos    bool
	linkType LinkType
	hdr      [16]byte
}

func newPcapReader(r io.Reader, magic [4]byte) (*pcapReader, error) {
	p := &pcapReader{r: r}
	switch {
	case magic == [4]byte{0xA1, 0xB2, 0xC3, 0xD4}:
		p.order = binary.BigEndian
	case magic == [4]byte{0xD4, 0xC3, 0xB2, 0xA1}:
		p.order = binary.LittleEndian
	case magic == [4]byte{0xA1, 0xB2, 0x3C, 0x4D}:
		p.order, p.nanos = binary.BigEndian, true
	case magic == [4]byte{0x4D, 0x3C, 0xB2, 0xA1}:
		p.order, p.nanos = binary.LittleEndian, true
	default:
		return nil, formatErr("unknown file magic % x (neither pcap nor pcapng)", magic[:])
	}
	var h [20]byte
	if err := readFull(r, h[:], "pcap file header"); err != nil {
		if err == io.EOF {
			err = formatErr("pcap file header missing")
		}
		return nil, err
	}
	// h: version major(2) minor(2), thiszone(4), sigfigs(4), snaplen(4), linktype(4)
	p.linkType = LinkType(p.order.Uint32(h[16:]) & 0x0FFFFFFF) // upper bits: FCS info
	return p, nil
}

func (p *pcapReader) next() (Frame, error) {
	if err := readFull(p.r, p.hdr[:], "pcap record header"); err != nil {
		return Frame{}, err
	}
	sec := p.order.Uint32(p.hdr[0:])
	frac := p.order.Uint32(p.hdr[4:])
	capLen := p.order.Uint32(p.hdr[8:])
	origLen := p.order.Uint32(p.hdr[12:])
	if capLen > maxFrame {
		return Frame{}, formatErr("record captured length %d exceeds %d", capLen, maxFrame)
	}
	data := make([]byte, capLen)
	if err := readFull(p.r, data, "pcap record data"); err != nil {
		if err == io.EOF {
			err = formatErr("pcap record data missing")
		}
		return Frame{}, err
	}
	ns := int64(frac) * 1000
	if p.nanos {
		ns = int64(frac)
	}
	return Frame{
		Timestamp:      time.Unix(int64(sec), ns).UTC(),
		LinkType:       p.linkType,
		Data:           data,
		OriginalLength: int(origLen),
	}, nil
}
