// Package bitnames names the bits set in a flag word, for the String
// methods and decoders that print flags by name (nhrp's packet flags, the
// kernel's neighbour states). Like nhrp/backoff, it is a small standard
// library only package that nhrp and the OS-facing packages share.
package bitnames

// Names returns the names of the entries of table that v has bits of, in
// table order, and the bits of v that no entry names. An entry's Mask is
// one bit or a group of bits. The table's type is unnamed so that callers
// write it as a plain literal of {mask, name} pairs.
func Names[T ~uint8 | ~uint16 | ~uint32 | ~uint64](v T, table []struct {
	Mask T
	Name string
}) (names []string, rest T) {
	rest = v
	for _, b := range table {
		if v&b.Mask != 0 {
			names = append(names, b.Name)
			rest &^= b.Mask
		}
	}
	return names, rest
}
