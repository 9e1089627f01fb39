package kernel

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"
)

// TestParseNFLOGPacket: the attributes a conversion uses are read from a
// packet message (in device, payload, timestamp; others skipped), and a
// malformed attribute list is refused.
func TestParseNFLOGPacket(t *testing.T) {
	be := binary.BigEndian
	stamp := time.Unix(1796284010, 123456000)
	msg := []byte{0, 0, 0, 5}                            // nfgenmsg: family, version, res_id (group 5)
	msg = appendNLAttr(msg, 1, []byte{0x08, 0x00, 3, 0}) // NFULA_PACKET_HDR: skipped
	msg = appendNLAttr(msg, nfulaIfindexIn, be.AppendUint32(nil, 7))
	ts := be.AppendUint64(nil, uint64(stamp.Unix()))
	msg = appendNLAttr(msg, nfulaTimestamp, be.AppendUint64(ts, uint64(stamp.Nanosecond()/1000)))
	payload := []byte{0x45, 0, 0, 21, 1, 2, 3, 4, 5}      // odd length: padded
	msg = appendNLAttr(msg, nfulaPayload|0x8000, payload) // NLA_F_NESTED is masked off

	p, ok := parseNFLOGPacket(msg)
	if !ok {
		t.Fatal("a well-formed packet message was refused")
	}
	if p.inDev != 7 || !bytes.Equal(p.payload, payload) || !p.stamp.Equal(stamp) {
		t.Errorf("parsed in device %d, payload % x, stamp %v; want 7, % x, %v", p.inDev, p.payload, p.stamp, payload, stamp)
	}

	bad := append([]byte(nil), msg...)
	binary.NativeEndian.PutUint16(bad[4:6], uint16(len(bad))) // first attribute longer than the list
	for name, m := range map[string][]byte{
		"attribute longer than the message": bad,
		"attribute length below its header": append([]byte{0, 0, 0, 5}, 2, 0, 4, 0),
		"no nfgenmsg":                       {0, 0},
	} {
		if _, ok := parseNFLOGPacket(m); ok {
			t.Errorf("%s: accepted", name)
		}
	}
}
