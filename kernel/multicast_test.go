package kernel

import (
	"encoding/hex"
	"testing"
)

// TestCompleteUDPChecksum checks the checksum against a packet whose UDP
// checksum was computed by the kernel (captured from a RIP-like datagram
// 10.0.0.1:5000 -> 224.0.0.100:5000 "hello 1"), after zeroing it and after
// replacing it by the pseudo-header sum that checksum offload leaves.
func TestCompleteUDPChecksum(t *testing.T) {
	good, _ := hex.DecodeString("4500002300004000011164ee0a000001e00000641388138800" + "0f" + "0000" + "68656c6c6f2031")
	// Compute the reference sum independently: pseudo header + UDP.
	pkt := append([]byte(nil), good...)
	completeUDPChecksum(pkt)
	ref := pkt[26:28]
	var sum uint32
	sum = onesSum(sum, pkt[12:20])
	sum += 17 + 15
	sum = onesSum(sum, pkt[20:])
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	if uint16(sum) != 0xffff {
		t.Fatalf("checksum %x does not verify (sum %x)", ref, sum)
	}
	for _, tc := range []struct {
		name string
		csum [2]byte
	}{{"zero", [2]byte{0, 0}}, {"partial", [2]byte{0x12, 0x34}}} {
		p := append([]byte(nil), good...)
		p[26], p[27] = tc.csum[0], tc.csum[1]
		completeUDPChecksum(p)
		if p[26] != ref[0] || p[27] != ref[1] {
			t.Errorf("%s: checksum %x, want %x", tc.name, p[26:28], ref)
		}
	}
	// Not UDP, or a fragment: untouched.
	for _, mod := range []func(p []byte){
		func(p []byte) { p[9] = 89 },   // OSPF
		func(p []byte) { p[6] = 0x20 }, // more fragments
		func(p []byte) { p[2], p[3] = 0, 200 },
	} {
		p := append([]byte(nil), good...)
		p[26], p[27] = 0xab, 0xcd
		mod(p)
		completeUDPChecksum(p)
		if p[26] != 0xab || p[27] != 0xcd {
			t.Errorf("packet %x changed", p)
		}
	}
}
