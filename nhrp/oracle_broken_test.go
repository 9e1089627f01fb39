package nhrp_test

import (
	"strings"
	"testing"

	"github.com/dmvpnd/dmvpnd/nhrp"
)

// TestOracleCatchesBrokenEncoders proves that the fuzz oracle can fail:
// each deliberately broken encoder must be caught on at least one input,
// at the stage named, while the real encoder passes on all of them.
func TestOracleCatchesBrokenEncoders(t *testing.T) {
	inputs := capturedAndSamples(t)
	broken := []struct {
		name  string
		enc   func(*nhrp.Packet) ([]byte, error)
		stage string
	}{
		{"drops the last extension", func(p *nhrp.Packet) ([]byte, error) {
			q := p.Clone()
			if n := len(q.Extensions); n > 1 {
				q.Extensions = q.Extensions[:n-1]
			}
			return q.Marshal()
		}, "!= decode(b)"},
		{"leaves the checksum stale", func(p *nhrp.Packet) ([]byte, error) {
			b, err := p.Marshal()
			if err == nil {
				b[12] ^= 0x01
			}
			return b, err
		}, "re-encoding does not decode"},
		{"drops the CIE unused field", func(p *nhrp.Packet) ([]byte, error) {
			q := p.Clone()
			for i := range q.CIEs {
				q.CIEs[i].Unused = 0
			}
			return q.Marshal()
		}, "!= decode(b)"},
		{"refuses IPv6", func(p *nhrp.Packet) ([]byte, error) {
			if p.SrcProto.Is6() {
				return nil, errTest
			}
			return p.Marshal()
		}, "encode of a decoded packet failed"},
		{"is not deterministic", func() func(*nhrp.Packet) ([]byte, error) {
			calls := 0
			return func(p *nhrp.Packet) ([]byte, error) {
				calls++
				q := p.Clone()
				q.HopCount = uint8(calls%250) + 1
				return q.Marshal()
			}
		}(), "!= decode(b)"},
	}
	// An input with a nonzero CIE unused field, which only the real
	// encoder keeps.
	odd := nhrp.NewResolutionRequest(s1NBMA, s1Tunnel, s2LANHost, 1, 300, 0)
	odd.CIEs[0].Unused = 7
	b, err := odd.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	inputs = append(inputs, b)

	for _, in := range inputs {
		if err := roundTrip(in, (*nhrp.Packet).Marshal); err != nil {
			t.Fatalf("the real encoder fails the oracle: %v", err)
		}
	}
	for _, be := range broken {
		t.Run(be.name, func(t *testing.T) {
			for _, in := range inputs {
				if err := roundTrip(in, be.enc); err != nil {
					if !strings.Contains(err.Error(), be.stage) {
						t.Errorf("caught at the wrong stage: %v", err)
					}
					return
				}
			}
			t.Errorf("the oracle accepted a broken encoder on all %d inputs", len(inputs))
		})
	}
}

var errTest = testError("broken on purpose")

type testError string

func (e testError) Error() string { return string(e) }
