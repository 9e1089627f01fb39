package nhrpcap

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// LinkType is a pcap LINKTYPE_ value.
type LinkType uint32

// Link types understood by Extract.
const (
	LinkTypeNull      LinkType = 0   // BSD loopback: 4-octet host-order address family
	LinkTypeEthernet  LinkType = 1   // Ethernet II, optional VLAN tags
	LinkTypeRawAlt12  LinkType = 12  // DLT_RAW on some BSDs (raw IP)
	LinkTypeRawAlt14  LinkType = 14  // DLT_RAW on OpenBSD (raw IP)
	LinkTypeRaw       LinkType = 101 // raw IPv4 or IPv6
	LinkTypeLinuxSLL  LinkType = 113 // Linux cooked capture v1
	LinkTypeIPv4      LinkType = 228 // raw IPv4
	LinkTypeIPv6      LinkType = 229 // raw IPv6
	LinkTypeLinuxSLL2 LinkType = 276 // Linux cooked capture v2
)

// Frame is one captured frame.
type Frame struct {
	// Number is the 1-based position of the frame in the file, as
	// Wireshark numbers it.
	Number    int
	Timestamp time.Time
	LinkType  LinkType
	// Data holds the captured octets; OriginalLength the length on the
	// wire, larger than len(Data) when the capture was cut at the snap
	// length.
	Data           []byte
	OriginalLength int
}

// maxFrame bounds the captured length of a frame, so that a corrupt
// length field cannot make the reader allocate gigabytes.
const maxFrame = 256 << 10

// ErrFormat is wrapped by errors about the capture file's own structure.
var ErrFormat = errors.New("malformed capture file")

// Reader reads frames from a pcap or pcapng file.
type Reader struct {
	next func() (Frame, error)
	n    int
}

// NewReader detects the file format from its first four octets and
// returns a Reader for it.
func NewReader(r io.Reader) (*Reader, error) {
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return nil, fmt.Errorf("nhrpcap: reading file magic: %w", err)
	}
	rd := &Reader{}
	switch {
	case magic == [4]byte{0x0A, 0x0D, 0x0D, 0x0A}:
		ng, err := newPcapngReader(r, magic)
		if err != nil {
			return nil, err
		}
		rd.next = ng.next
	default:
		pc, err := newPcapReader(r, magic)
		if err != nil {
			return nil, err
		}
		rd.next = pc.next
	}
	return rd, nil
}

// Next returns the next frame, or io.EOF after the last one.
func (r *Reader) Next() (Frame, error) {
	f, err := r.next()
	if err != nil {
		return Frame{}, err
	}
	r.n++
	f.Number = r.n
	return f, nil
}

func formatErr(format string, args ...any) error {
	return fmt.Errorf("nhrpcap: %w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

// readFull reads exactly len(b) octets; a clean EOF before the first octet
// is io.EOF, a partial read io.ErrUnexpectedEOF wrapped in a format error.
func readFull(r io.Reader, b []byte, what string) error {
	n, err := io.ReadFull(r, b)
	switch {
	case err == io.EOF:
		return io.EOF
	case err == io.ErrUnexpectedEOF:
		return formatErr("%s truncated: %d of %d octets", what, n, len(b))
	case err != nil:
		return fmt.Errorf("nhrpcap: reading %s: %w", what, err)
	}
	return nil
}
