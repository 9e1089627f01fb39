// Package nhrpdecode implements `dmvpnctl nhrp decode`: it prints every NHRP
// packet of a pcap or pcapng capture in readable text or as JSON, with
// malformed packets shown with their decode error.
package nhrpdecode

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/dmvpnd/dmvpnd/nhrp"
	"github.com/dmvpnd/dmvpnd/nhrp/nhrpcap"
)

// Record is one NHRP packet found in a capture: where it was found and
// either its decoded form or the decode error.
type Record struct {
	Frame     int
	Time      time.Time
	VLANs     []uint16
	Src, Dst  netip.Addr
	Encap     nhrpcap.Encapsulation
	GREKey    uint32
	HasGREKey bool
	// Length is the number of NHRP octets available in the capture.
	Length int
	// Truncated is set when the capture held less than the IP header said.
	Truncated bool
	Packet    *nhrp.Packet
	Err       error
}

// Decode reads a pcap or pcapng capture and returns a Record for every NHRP
// packet in it, in file order. A capture file that is itself damaged ends
// the read with an error, returned with the records read so far.
func Decode(r io.Reader) ([]Record, error) {
	rd, err := nhrpcap.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("nhrpdecode: %w", err)
	}
	var recs []Record
	for n := 1; ; n++ {
		f, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return recs, nil
		}
		if err != nil {
			return recs, fmt.Errorf("nhrpdecode: frame %d: %w", n, err)
		}
		p, ok := nhrpcap.Extract(f)
		if !ok {
			continue
		}
		rec := Record{
			Frame: p.Frame, Time: p.Timestamp, VLANs: p.VLANs, Src: p.Src, Dst: p.Dst,
			Encap: p.Encap, GREKey: p.GREKey, HasGREKey: p.HasGREKey,
			Length: len(p.NHRP), Truncated: p.Truncated,
		}
		rec.Packet, rec.Err = nhrp.Parse(p.NHRP)
		recs = append(recs, rec)
	}
}

// timeFormat prints capture timestamps in UTC with microseconds, fixed
// width.
const timeFormat = "2006-01-02T15:04:05.000000Z"
