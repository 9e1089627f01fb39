package nhrp

import "strconv"

// The names of the protocol's numbers, as dmvpnctl, the logs and the
// metrics show them: one table per enumeration, read by one lookup.

var typeNames = [...]string{
	TypeResolutionRequest:   "resolution-request",
	TypeResolutionReply:     "resolution-reply",
	TypeRegistrationRequest: "registration-request",
	TypeRegistrationReply:   "registration-reply",
	TypePurgeRequest:        "purge-request",
	TypePurgeReply:          "purge-reply",
	TypeErrorIndication:     "error-indication",
	TypeTrafficIndication:   "traffic-indication",
}

func (t Type) String() string {
	if t.Valid() {
		return typeNames[t]
	}
	return "type-" + strconv.Itoa(int(t))
}

var (
	extensionNames = map[ExtensionType]string{
		ExtensionEnd:              "end",
		ExtensionResponderAddress: "responder-address",
		ExtensionForwardTransit:   "forward-transit-nhs",
		ExtensionReverseTransit:   "reverse-transit-nhs",
		ExtensionAuthentication:   "authentication",
		ExtensionVendorPrivate:    "vendor-private",
		ExtensionNATAddress:       "nat-address",
	}

	cieCodeNames = map[CIECode]string{
		CIESuccess:                 "success",
		CIEAdminProhibited:         "administratively-prohibited",
		CIEInsufficientResources:   "insufficient-resources",
		CIENoBinding:               "no-binding",
		CIEBindingNotUnique:        "binding-not-unique",
		CIEUniqueAlreadyRegistered: "unique-address-already-registered",
	}

	errorCodeNames = map[ErrorCode]string{
		ErrorUnrecognizedExtension:  "unrecognized-extension",
		ErrorLoopDetected:           "loop-detected",
		ErrorProtoAddrUnreachable:   "protocol-address-unreachable",
		ErrorProtocolError:          "protocol-error",
		ErrorSDUSizeExceeded:        "sdu-size-exceeded",
		ErrorInvalidExtension:       "invalid-extension",
		ErrorInvalidResolutionReply: "invalid-resolution-reply",
		ErrorAuthenticationFailure:  "authentication-failure",
		ErrorHopCountExceeded:       "hop-count-exceeded",
		ErrorVPNMismatch:            "vpn-mismatch",
		ErrorVPNUnsupported:         "vpn-unsupported",
	}
)

func (e ExtensionType) String() string { return enumName(extensionNames, e, "extension-") }
func (c CIECode) String() string       { return enumName(cieCodeNames, c, "code-") }
func (e ErrorCode) String() string     { return enumName(errorCodeNames, e, "error-") }

// enumName returns v's name in names, or prefix and v's number for a value
// without one: the lookup behind this package's String methods.
func enumName[T ~uint8 | ~uint16](names map[T]string, v T, prefix string) string {
	if n, ok := names[v]; ok {
		return n
	}
	return prefix + strconv.Itoa(int(v))
}
