// Package nhrpcap reads NHRP packets out of packet capture files: classic
// libpcap files (either byte order, microsecond or nanosecond timestamps)
// and pcapng files (tcpdump.org/pcapng draft, any number of sections and
// interfaces).
//
// Supported link types are Ethernet (with or without 802.1Q / 802.1ad /
// QinQ VLAN tags), Linux cooked capture v1 and v2 (SLL, SLL2), raw IP,
// and BSD loopback (null). Inside, NHRP is found in GRE (RFC 2784 / 2890,
// protocol type 0x2001) over IPv4 or IPv6, or directly over IP protocol 54.
//
// The package does no I/O of its own beyond the io.Reader it is given.
// Package nhrpcaptest writes classic pcap files, which tests use to hand
// packets to Wireshark and to this reader.
package nhrpcap
