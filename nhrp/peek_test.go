package nhrp_test

import (
	"errors"
	"testing"

	"github.com/dmvpnd/dmvpnd/nhrp"
)

func TestPeekTypeAndRequestID(t *testing.T) {
	reg := nhrp.NewRegistrationRequest(s1NBMA, s1Tunnel, hubTunnel, 0xA1B2C3D4, 300, 0, false)
	regB, err := reg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ei := nhrp.NewErrorIndication(s1NBMA, s1Tunnel, hubTunnel, nhrp.ErrorLoopDetected, 0, regB)
	eiB, err := ei.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		b      []byte
		typ    nhrp.Type
		typeOK bool
		id     uint32
		idOK   bool
	}{
		{"registration", regB, nhrp.TypeRegistrationRequest, true, 0xA1B2C3D4, true},
		{"error indication has no id", eiB, nhrp.TypeErrorIndication, true, 0, false},
		{"19 octets", regB[:19], 0, false, 0, false},
		{"fixed header only", regB[:20], nhrp.TypeRegistrationRequest, true, 0, false},
		{"empty", nil, 0, false, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			typ, ok := nhrp.PeekType(tc.b)
			if typ != tc.typ || ok != tc.typeOK {
				t.Errorf("PeekType = %v, %v; want %v, %v", typ, ok, tc.typ, tc.typeOK)
			}
			id, ok := nhrp.PeekRequestID(tc.b)
			if id != tc.id || ok != tc.idOK {
				t.Errorf("PeekRequestID = %#x, %v; want %#x, %v", id, ok, tc.id, tc.idOK)
			}
		})
	}
}

// hopZero returns b with hop count 0 and a valid checksum.
func hopZero(t *testing.T, p *nhrp.Packet) []byte {
	t.Helper()
	p.HopCount = 1
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	b[9] = 0
	// Hop count is the low octet of the word at 8: the checksum grows by 1.
	sum := uint32(b[12])<<8 | uint32(b[13])
	sum++
	sum = sum>>16 + sum&0xFFFF
	b[12], b[13] = byte(sum>>8), byte(sum)
	return b
}

func TestDecodeOptionsZeroHopErrorIndication(t *testing.T) {
	reg := nhrp.NewRegistrationRequest(s1NBMA, s1Tunnel, hubTunnel, 1, 300, 0, false)
	ei := hopZero(t, nhrp.NewErrorIndication(s1NBMA, s1Tunnel, hubTunnel, nhrp.ErrorLoopDetected, 0, make([]byte, 28)))
	regZero := hopZero(t, reg)
	lenient := nhrp.DecodeOptions{ZeroHopErrorIndication: true}
	for _, tc := range []struct {
		name    string
		b       []byte
		opts    nhrp.DecodeOptions
		wantErr error
	}{
		{"strict error indication", ei, nhrp.DecodeOptions{}, nhrp.ErrHopCount},
		{"lenient error indication", ei, lenient, nil},
		{"lenient registration stays strict", regZero, lenient, nhrp.ErrHopCount},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p nhrp.Packet
			err := p.UnmarshalOptions(tc.b, tc.opts)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("UnmarshalOptions: %v, want %v", err, tc.wantErr)
			}
			if err == nil && p.HopCount != 0 {
				t.Errorf("hop count %d, want the wire value 0", p.HopCount)
			}
		})
	}
	// A corrupted packet is not made acceptable by the option.
	bad := append([]byte(nil), ei...)
	bad[13] ^= 1
	var p nhrp.Packet
	if err := p.UnmarshalOptions(bad, lenient); !errors.Is(err, nhrp.ErrChecksum) {
		t.Errorf("corrupted lenient decode: %v, want a checksum error", err)
	}
}
