package nhrp_test

import (
	"bytes"
	"fmt"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/nhrp"
)

// roundTrip is the fuzz oracle: a packet that decodes must re-encode (with
// enc), the encoding must decode to an equal packet, and encoding that
// again must give identical bytes. Inputs that do not decode pass.
func roundTrip(b []byte, enc func(*nhrp.Packet) ([]byte, error)) error {
	p1, err := nhrp.Parse(b)
	if err != nil {
		return nil
	}
	b1, err := enc(p1)
	if err != nil {
		return fmt.Errorf("encode of a decoded packet failed: %v\ninput %x", err, b)
	}
	p2, err := nhrp.Parse(b1)
	if err != nil {
		return fmt.Errorf("re-encoding does not decode: %v\ninput %x\nencoding %x", err, b, b1)
	}
	if diff := cmp.Diff(p1, p2, cmpPacket...); diff != "" {
		return fmt.Errorf("decode(encode(decode(b))) != decode(b) (-first +second):\n%s\ninput %x", diff, b)
	}
	b2, err := enc(p2)
	if err != nil {
		return fmt.Errorf("second encode failed: %v", err)
	}
	if !bytes.Equal(b1, b2) {
		return fmt.Errorf("second encoding differs:\n first %x\nsecond %x", b1, b2)
	}
	// The typed NHRP group is canonical: setting the group decoded from
	// a packet back into it changes no octet.
	if g, ok, gerr := p1.Group(); ok && gerr == nil {
		q := p1.Clone()
		if err := q.SetGroup(g); err != nil {
			return fmt.Errorf("SetGroup(%q) of a decoded group: %v", g, err)
		}
		b3, err := enc(q)
		if err != nil {
			return fmt.Errorf("encode after SetGroup: %v", err)
		}
		if !bytes.Equal(b1, b3) {
			return fmt.Errorf("re-setting decoded group %q changed the encoding:\n before %x\n after  %x", g, b1, b3)
		}
	}
	return nil
}
