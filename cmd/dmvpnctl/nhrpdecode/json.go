package nhrpdecode

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/netip"

	"github.com/dmvpnd/dmvpnd/nhrp"
)

// JSON document shapes. Addresses are strings ("" when absent), octet
// strings hex, codes both numeric and named.
type (
	jsonRecord struct {
		Frame     int         `json:"frame"`
		Time      string      `json:"time"`
		VLANs     []uint16    `json:"vlans,omitempty"`
		OuterSrc  string      `json:"outer_src"`
		OuterDst  string      `json:"outer_dst"`
		Encap     string      `json:"encapsulation"`
		GREKey    *uint32     `json:"gre_key,omitempty"`
		Length    int         `json:"length"`
		Truncated bool        `json:"capture_truncated,omitempty"`
		Error     *jsonError  `json:"error,omitempty"`
		Packet    *jsonPacket `json:"packet,omitempty"`
	}
	jsonError struct {
		Reason   string `json:"reason"`
		Offset   int    `json:"offset"`
		Code     int    `json:"code"`
		CodeName string `json:"code_name"`
	}
	jsonPacket struct {
		Type               string          `json:"type"`
		TypeCode           int             `json:"type_code"`
		AFN                int             `json:"afn"`
		ProtocolType       int             `json:"protocol_type"`
		SNAP               string          `json:"snap,omitempty"`
		HopCount           int             `json:"hop_count"`
		Version            int             `json:"version"`
		Flags              *int            `json:"flags,omitempty"`
		FlagNames          []string        `json:"flag_names,omitempty"`
		RequestID          *uint32         `json:"request_id,omitempty"`
		ErrorCode          *int            `json:"error_code,omitempty"`
		ErrorCodeName      string          `json:"error_code_name,omitempty"`
		ErrorOffset        *int            `json:"error_offset,omitempty"`
		TrafficCode        *int            `json:"traffic_code,omitempty"`
		Unused             []int           `json:"unused,omitempty"`
		SrcNBMA            string          `json:"src_nbma"`
		SrcNBMAType        int             `json:"src_nbma_type,omitempty"`
		SrcNBMASubaddr     string          `json:"src_nbma_subaddr,omitempty"`
		SrcNBMASubaddrType int             `json:"src_nbma_subaddr_type,omitempty"`
		SrcProto           string          `json:"src_proto"`
		DstProto           string          `json:"dst_proto"`
		CIEs               []jsonCIE       `json:"cies,omitempty"`
		Payload            string          `json:"payload,omitempty"`
		PayloadSummary     string          `json:"payload_summary,omitempty"`
		Extensions         []jsonExtension `json:"extensions,omitempty"`
	}
	jsonCIE struct {
		Code                  int    `json:"code"`
		CodeName              string `json:"code_name"`
		PrefixLength          int    `json:"prefix_length"`
		Unused                int    `json:"unused,omitempty"`
		MTU                   int    `json:"mtu"`
		HoldingTime           int    `json:"holding_time"`
		Preference            int    `json:"preference"`
		ClientNBMA            string `json:"client_nbma"`
		ClientNBMAType        int    `json:"client_nbma_type,omitempty"`
		ClientNBMASubaddr     string `json:"client_nbma_subaddr,omitempty"`
		ClientNBMASubaddrType int    `json:"client_nbma_subaddr_type,omitempty"`
		ClientProto           string `json:"client_proto"`
		// Covers is, in a successful Resolution Reply, the destination
		// prefix the CIE answers for.
		Covers string `json:"covers,omitempty"`
	}
	jsonExtension struct {
		Type       string    `json:"type"`
		TypeCode   int       `json:"type_code"`
		Compulsory bool      `json:"compulsory"`
		Reserved   bool      `json:"reserved_bit,omitempty"`
		CIEs       []jsonCIE `json:"cies,omitempty"`
		AuthType   *uint32   `json:"auth_type,omitempty"`
		Password   string    `json:"password,omitempty"`
		AuthData   string    `json:"auth_data,omitempty"`
		VendorOUI  string    `json:"vendor_oui,omitempty"`
		VendorData string    `json:"vendor_data,omitempty"`
		Raw        *string   `json:"raw,omitempty"`
	}
)

// RenderJSON writes recs as one indented JSON array.
func RenderJSON(w io.Writer, recs []Record, opt Options) error {
	out := make([]jsonRecord, len(recs))
	for i := range recs {
		out[i] = toJSON(&recs[i], opt)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}

func toJSON(r *Record, opt Options) jsonRecord {
	j := jsonRecord{
		Frame: r.Frame, Time: r.Time.UTC().Format(timeFormat), VLANs: r.VLANs,
		OuterSrc: addrJSON(r.Src), OuterDst: addrJSON(r.Dst), Encap: r.Encap.String(),
		Length: r.Length, Truncated: r.Truncated,
	}
	if r.HasGREKey {
		k := r.GREKey
		j.GREKey = &k
	}
	if r.Err != nil {
		j.Error = &jsonError{Reason: r.Err.Error()}
		var pe *nhrp.ParseError
		if errors.As(r.Err, &pe) {
			j.Error = &jsonError{Reason: pe.Reason, Offset: pe.Offset, Code: int(pe.Code), CodeName: pe.Code.String()}
		}
		return j
	}
	j.Packet = packetJSON(r.Packet, opt)
	return j
}

func packetJSON(p *nhrp.Packet, opt Options) *jsonPacket {
	j := &jsonPacket{
		Type: p.Type.String(), TypeCode: int(p.Type), AFN: int(p.AFN), ProtocolType: int(p.ProtocolType),
		HopCount: int(p.HopCount), Version: int(p.Version),
		SrcNBMA: addrJSON(p.SrcNBMA), SrcNBMAType: int(p.SrcNBMAType),
		SrcNBMASubaddr: hex.EncodeToString(p.SrcNBMASubaddr), SrcNBMASubaddrType: int(p.SrcNBMASubaddrType),
		SrcProto: addrJSON(p.SrcProto), DstProto: addrJSON(p.DstProto),
	}
	if p.SNAP != ([5]byte{}) {
		j.SNAP = hex.EncodeToString(p.SNAP[:])
	}
	switch p.Type {
	case nhrp.TypeErrorIndication:
		code, off := int(p.ErrorCode), int(p.ErrorOffset)
		j.ErrorCode, j.ErrorCodeName, j.ErrorOffset = &code, p.ErrorCode.String(), &off
		if p.Unused[0] != 0 {
			j.Unused = []int{int(p.Unused[0])}
		}
	case nhrp.TypeTrafficIndication:
		code := int(p.TrafficCode)
		j.TrafficCode = &code
		if p.Unused != [2]uint16{} {
			j.Unused = []int{int(p.Unused[0]), int(p.Unused[1])}
		}
	default:
		f, id := int(p.Flags), p.RequestID
		j.Flags, j.FlagNames, j.RequestID = &f, p.Flags.Names(p.Type), &id
	}
	j.CIEs = ciesJSON(p.CIEs)
	if p.Type == nhrp.TypeResolutionReply {
		for i := range j.CIEs {
			if p.CIEs[i].Code == nhrp.CIESuccess {
				j.CIEs[i].Covers = p.DestinationPrefix(&p.CIEs[i]).String()
			}
		}
	}
	if len(p.Payload) > 0 {
		j.Payload = hex.EncodeToString(p.Payload)
		j.PayloadSummary = payloadSummary(p.Type, p.Payload)
	}
	for i := range p.Extensions {
		j.Extensions = append(j.Extensions, extensionJSON(&p.Extensions[i], opt))
	}
	return j
}

func extensionJSON(e *nhrp.Extension, opt Options) jsonExtension {
	j := jsonExtension{Type: e.Type.String(), TypeCode: int(e.Type), Compulsory: e.Compulsory, Reserved: e.Reserved}
	switch {
	case e.Opaque || !e.Type.Known():
		raw := hex.EncodeToString(e.Raw)
		j.Raw = &raw
	case e.Type.CarriesCIEs():
		j.CIEs = ciesJSON(e.CIEs)
	case e.Type == nhrp.ExtensionAuthentication:
		t := e.Auth.Type
		j.AuthType = &t
		switch {
		case t == nhrp.AuthCleartext && opt.ShowSecrets:
			j.Password = string(e.Auth.Data)
		case t == nhrp.AuthCleartext:
			j.Password = "<hidden>"
		default:
			j.AuthData = hex.EncodeToString(e.Auth.Data)
		}
	case e.Type == nhrp.ExtensionVendorPrivate:
		j.VendorOUI = hex.EncodeToString(e.Vendor.OUI[:])
		j.VendorData = hex.EncodeToString(e.Vendor.Data)
	}
	return j
}

func ciesJSON(cs []nhrp.CIE) []jsonCIE {
	var out []jsonCIE
	for i := range cs {
		c := &cs[i]
		out = append(out, jsonCIE{
			Code: int(c.Code), CodeName: c.Code.String(), PrefixLength: int(c.PrefixLength), Unused: int(c.Unused),
			MTU: int(c.MTU), HoldingTime: int(c.HoldingTime), Preference: int(c.Preference),
			ClientNBMA: addrJSON(c.ClientNBMA), ClientNBMAType: int(c.ClientNBMAType),
			ClientNBMASubaddr: hex.EncodeToString(c.ClientNBMASubaddr), ClientNBMASubaddrType: int(c.ClientNBMASubaddrType),
			ClientProto: addrJSON(c.ClientProto),
		})
	}
	return out
}

func addrJSON(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
