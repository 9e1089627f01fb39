package nhrpcap

import (
	"encoding/binary"
	"io"
	"math"
	"time"
)

// pcapng block types (IETF draft-ietf-opsawg-pcapng).
const (
	blockSHB = 0x0A0D0D0A
	blockIDB = 0x00000001
	blockPB  = 0x00000002 // obsolete Packet Block
	blockSPB = 0x00000003
	blockEPB = 0x00000006

	optEnd       = 0
	optTSResol   = 9
	optTSOffset  = 14
	maxBlockBody = maxFrame + 64<<10
)

type pcapngIface struct {
	linkType LinkType
	// unitsPerSec is the timestamp resolution; offset is if_tsoffset.
	unitsPerSec float64
	offset      int64
}

type pcapngReader struct {
	r      io.Reader
	order  binary.ByteOrder
	ifaces []pcapngIface
	first  *[4]byte // the magic already consumed by NewReader
}

func newPcapngReader(r io.Reader, magic [4]byte) (*pcapngReader, error) {
	p := &pcapngReader{r: r, first: &magic}
	return p, nil
}

func (p *pcapngReader) next() (Frame, error) {
	for {
		var typ uint32
		var hdr [8]byte
		if p.first != nil {
			// The section header's type is palindromic: no byte order needed.
			typ = blockSHB
			p.first = nil
			if err := readFull(p.r, hdr[4:], "pcapng block header"); err != nil {
				return Frame{}, truncatedEOF(err)
			}
		} else {
			if err := readFull(p.r, hdr[:], "pcapng block header"); err != nil {
				return Frame{}, err
			}
			typ = p.order.Uint32(hdr[:4])
		}
		if typ == blockSHB {
			if err := p.readSHB(hdr); err != nil {
				return Frame{}, err
			}
			continue
		}
		if p.order == nil {
			return Frame{}, formatErr("pcapng block before the section header")
		}
		total := p.order.Uint32(hdr[4:])
		if total < 12 || total%4 != 0 {
			return Frame{}, formatErr("pcapng block type 0x%x with length %d", typ, total)
		}
		bodyLen := int64(total) - 12
		switch typ {
		case blockIDB, blockEPB, blockSPB, blockPB:
		default:
			// Skip unknown blocks without buffering them.
			if _, err := io.CopyN(io.Discard, p.r, bodyLen+4); err != nil {
				return Frame{}, formatErr("pcapng block type 0x%x truncated", typ)
			}
			continue
		}
		if bodyLen > maxBlockBody {
			return Frame{}, formatErr("pcapng block type 0x%x of %d octets exceeds %d", typ, total, maxBlockBody)
		}
		body := make([]byte, bodyLen+4)
		if err := readFull(p.r, body, "pcapng block body"); err != nil {
			return Frame{}, truncatedEOF(err)
		}
		if trailer := p.order.Uint32(body[bodyLen:]); trailer != total {
			return Frame{}, formatErr("pcapng block type 0x%x: trailing length %d, leading %d", typ, trailer, total)
		}
		body = body[:bodyLen]
		switch typ {
		case blockIDB:
			if err := p.readIDB(body); err != nil {
				return Frame{}, err
			}
		case blockEPB, blockPB:
			return p.readEPB(typ, body)
		case blockSPB:
			return p.readSPB(body)
		}
	}
}

func truncatedEOF(err error) error {
	if err == io.EOF {
		return formatErr("pcapng block truncated")
	}
	return err
}

// readSHB reads the rest of a section header block; hdr[4:8] holds its
// length in the section's (not yet known) byte order.
func (p *pcapngReader) readSHB(hdr [8]byte) error {
	var bom [4]byte
	if err := readFull(p.r, bom[:], "pcapng byte-order magic"); err != nil {
		return truncatedEOF(err)
	}
	switch bom {
	case [4]byte{0x1A, 0x2B, 0x3C, 0x4D}:
		p.order = binary.BigEndian
	case [4]byte{0x4D, 0x3C, 0x2B, 0x1A}:
		p.order = binary.LittleEndian
	default:
		return formatErr("pcapng byte-order magic % x", bom[:])
	}
	total := p.order.Uint32(hdr[4:])
	if total < 28 || total%4 != 0 {
		return formatErr("pcapng section header length %d", total)
	}
	// A new section starts a new interface list.
	p.ifaces = p.ifaces[:0]
	if _, err := io.CopyN(io.Discard, p.r, int64(total)-12); err != nil {
		return formatErr("pcapng section header truncated")
	}
	return nil
}

func (p *pcapngReader) readIDB(body []byte) error {
	if len(body) < 8 {
		return formatErr("pcapng interface description of %d octets", len(body))
	}
	ifc := pcapngIface{linkType: LinkType(p.order.Uint16(body)), unitsPerSec: 1e6}
	opts := body[8:]
	for len(opts) >= 4 {
		code, n := p.order.Uint16(opts), int(p.order.Uint16(opts[2:]))
		if code == optEnd {
			break
		}
		padded := (n + 3) &^ 3
		if len(opts)-4 < padded {
			return formatErr("pcapng interface option %d overruns the block", code)
		}
		v := opts[4 : 4+n]
		switch {
		case code == optTSResol && n == 1:
			e := float64(v[0] & 0x7F)
			if v[0]&0x80 != 0 {
				ifc.unitsPerSec = math.Pow(2, e)
			} else {
				ifc.unitsPerSec = math.Pow(10, e)
			}
		case code == optTSOffset && n == 8:
			ifc.offset = int64(p.order.Uint64(v))
		}
		opts = opts[4+padded:]
	}
	p.ifaces = append(p.ifaces, ifc)
	return nil
}

func (p *pcapngReader) iface(id uint32) (pcapngIface, error) {
	if int64(id) >= int64(len(p.ifaces)) {
		return pcapngIface{}, formatErr("pcapng packet for undeclared interface %d", id)
	}
	return p.ifaces[id], nil
}

func (p *pcapngReader) readEPB(typ uint32, body []byte) (Frame, error) {
	if len(body) < 20 {
		return Frame{}, formatErr("pcapng packet block of %d octets", len(body))
	}
	var id uint32
	if typ == blockPB {
		id = uint32(p.order.Uint16(body))
	} else {
		id = p.order.Uint32(body)
	}
	ifc, err := p.iface(id)
	if err != nil {
		return Frame{}, err
	}
	ts := uint64(p.order.Uint32(body[4:]))<<32 | uint64(p.order.Uint32(body[8:]))
	capLen := p.order.Uint32(body[12:])
	origLen := p.order.Uint32(body[16:])
	if int64(capLen) > int64(len(body)-20) {
		return Frame{}, formatErr("pcapng packet captured length %d overruns its block", capLen)
	}
	return Frame{
		Timestamp:      ifc.time(ts),
		LinkType:       ifc.linkType,
		Data:           body[20 : 20+capLen],
		OriginalLength: int(origLen),
	}, nil
}

func (p *pcapngReader) readSPB(body []byte) (Frame, error) {
	if len(body) < 4 {
		return Frame{}, formatErr("pcapng simple packet block of %d octets", len(body))
	}
	ifc, err := p.iface(0)
	if err != nil {
		return Frame{}, err
	}
	origLen := p.order.Uint32(body)
	data := body[4:]
	if int64(origLen) < int64(len(data)) {
		data = data[:origLen]
	}
	return Frame{LinkType: ifc.linkType, Data: data, OriginalLength: int(origLen)}, nil
}

func (i pcapngIface) time(ts uint64) time.Time {
	sec := float64(ts) / i.unitsPerSec
	whole := math.Floor(sec)
	ns := int64(math.Round((sec - whole) * 1e9))
	if i.unitsPerSec == 1e6 { // exact path for the common case
		return time.Unix(i.offset+int64(ts/1e6), int64(ts%1e6)*1000).UTC()
	}
	if i.unitsPerSec == 1e9 {
		return time.Unix(i.offset+int64(ts/1e9), int64(ts%1e9)).UTC()
	}
	return time.Unix(i.offset+int64(whole), ns).UTC()
}
