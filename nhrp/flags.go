package nhrp

import (
	"fmt"

	"github.com/dmvpnd/dmvpnd/nhrp/bitnames"
)

type flagName = struct {
	Mask Flags
	Name string
}

var (
	resolutionFlagNames = []flagName{
		{FlagResolutionRouter, "router"},
		{FlagResolutionAuthoritative, "authoritative"},
		{FlagResolutionStableDest, "stable-destination"},
		{FlagResolutionUnique, "unique"},
		{FlagResolutionStableSource, "stable-source"},
		{FlagCiscoNAT, "nat"},
	}
	registrationFlagNames = []flagName{{FlagRegistrationUnique, "unique"}, {FlagCiscoNAT, "nat"}}
	purgeFlagNames        = []flagName{{FlagPurgeNoReply, "no-reply"}, {FlagCiscoNAT, "nat"}}
)

// Names returns the names of the flags set in f, as they apply to packets
// of type t, in bit order; bits without a name for t are listed as hex
// ("0x0400"). Error and Traffic Indications carry no flags.
func (f Flags) Names(t Type) []string {
	var table []flagName
	switch t {
	case TypeResolutionRequest, TypeResolutionReply:
		table = resolutionFlagNames
	case TypeRegistrationRequest, TypeRegistrationReply:
		table = registrationFlagNames
	case TypePurgeRequest, TypePurgeReply:
		table = purgeFlagNames
	}
	names, rest := bitnames.Names(f, table)
	for bit := Flags(0x8000); bit != 0; bit >>= 1 {
		if rest&bit != 0 {
			names = append(names, fmt.Sprintf("0x%04x", uint16(bit)))
		}
	}
	return names
}
