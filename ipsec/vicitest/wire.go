package vicitest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Packet types of the VICI packet layer (strongSwan's vici README, "Packet layer").
const (
	CmdRequest      byte = 0
	CmdResponse     byte = 1
	CmdUnknown      byte = 2
	EventRegister   byte = 3
	EventUnregister byte = 4
	EventConfirm    byte = 5
	EventUnknown    byte = 6
	EventPacket     byte = 7
)

// Message element types (vici README, "Message format").
const (
	elemSectionStart byte = 1
	elemSectionEnd   byte = 2
	elemKeyValue     byte = 3
	elemListStart    byte = 4
	elemListItem     byte = 5
	elemListEnd      byte = 6
)

// MaxSegment is the largest transport segment charon accepts (512 KiB).
const MaxSegment = 512 * 1024

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("vicitest: malformed vici data")

// Message is an ordered VICI message tree. Values are string, []string or *Message.
type Message struct {
	keys []string
	vals map[string]any
}

// NewMessage returns an empty message.
func NewMessage() *Message { return &Message{vals: map[string]any{}} }

// Set adds or replaces key; v must be string, []string or *Message.
func (m *Message) Set(key string, v any) *Message {
	switch v.(type) {
	case string, []string, *Message:
	default:
		panic(fmt.Sprintf("vicitest: unsupported value type %T", v))
	}
	if _, ok := m.vals[key]; !ok {
		m.keys = append(m.keys, key)
	}
	m.vals[key] = v
	return m
}

// Keys returns the keys in wire order.
func (m *Message) Keys() []string { return append([]string(nil), m.keys...) }

// Get returns the value at key (nil if absent).
func (m *Message) Get(key string) any {
	if m == nil {
		return nil
	}
	return m.vals[key]
}

// String returns the string value at key, or "".
func (m *Message) String(key string) string {
	s, _ := m.Get(key).(string)
	return s
}

// Section returns the sub-section at key, or nil.
func (m *Message) Section(key string) *Message {
	s, _ := m.Get(key).(*Message)
	return s
}

// List returns the list at key, or nil.
func (m *Message) List(key string) []string {
	s, _ := m.Get(key).([]string)
	return s
}

// Encode renders m in the VICI message encoding.
func (m *Message) Encode() ([]byte, error) {
	var b bytes.Buffer
	if err := m.encode(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func putName(b *bytes.Buffer, name string) error {
	if len(name) > 255 {
		return fmt.Errorf("vicitest: name %q longer than 255 bytes", name[:32])
	}
	b.WriteByte(byte(len(name)))
	b.WriteString(name)
	return nil
}

func putValue(b *bytes.Buffer, v string) error {
	if len(v) > 0xffff {
		return fmt.Errorf("vicitest: value of %d bytes longer than 65535", len(v))
	}
	var l [2]byte
	binary.BigEndian.PutUint16(l[:], uint16(len(v)))
	b.Write(l[:])
	b.WriteString(v)
	return nil
}

func (m *Message) encode(b *bytes.Buffer) error {
	for _, k := range m.keys {
		switch v := m.vals[k].(type) {
		case string:
			b.WriteByte(elemKeyValue)
			if err := putName(b, k); err != nil {
				return err
			}
			if err := putValue(b, v); err != nil {
				return err
			}
		case []string:
			b.WriteByte(elemListStart)
			if err := putName(b, k); err != nil {
				return err
			}
			for _, it := range v {
				b.WriteByte(elemListItem)
				if err := putValue(b, it); err != nil {
					return err
				}
			}
			b.WriteByte(elemListEnd)
		case *Message:
			b.WriteByte(elemSectionStart)
			if err := putName(b, k); err != nil {
				return err
			}
			if err := v.encode(b); err != nil {
				return err
			}
			b.WriteByte(elemSectionEnd)
		}
	}
	return nil
}

type reader struct {
	b   []byte
	off int
}

func (r *reader) byte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, fmt.Errorf("%w: truncated at offset %d", ErrMalformed, r.off)
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

func (r *reader) name() (string, error) {
	l, err := r.byte()
	if err != nil {
		return "", err
	}
	if len(r.b)-r.off < int(l) {
		return "", fmt.Errorf("%w: name of %d bytes at offset %d overruns", ErrMalformed, l, r.off)
	}
	s := string(r.b[r.off : r.off+int(l)])
	r.off += int(l)
	return s, nil
}

func (r *reader) value() (string, error) {
	if len(r.b)-r.off < 2 {
		return "", fmt.Errorf("%w: value length truncated at offset %d", ErrMalformed, r.off)
	}
	l := int(binary.BigEndian.Uint16(r.b[r.off:]))
	r.off += 2
	if len(r.b)-r.off < l {
		return "", fmt.Errorf("%w: value of %d bytes at offset %d overruns", ErrMalformed, l, r.off)
	}
	s := string(r.b[r.off : r.off+l])
	r.off += l
	return s, nil
}

// DecodeMessage parses the VICI message encoding.
func DecodeMessage(b []byte) (*Message, error) {
	r := &reader{b: b}
	m, err := decodeSection(r, 0)
	if err != nil {
		return nil, err
	}
	return m, nil
}

const maxDepth = 32

func decodeSection(r *reader, depth int) (*Message, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%w: sections nested deeper than %d", ErrMalformed, maxDepth)
	}
	m := NewMessage()
	for r.off < len(r.b) {
		t, err := r.byte()
		if err != nil {
			return nil, err
		}
		switch t {
		case elemSectionEnd:
			if depth == 0 {
				return nil, fmt.Errorf("%w: unbalanced section end at offset %d", ErrMalformed, r.off-1)
			}
			return m, nil
		case elemKeyValue:
			k, err := r.name()
			if err != nil {
				return nil, err
			}
			v, err := r.value()
			if err != nil {
				return nil, err
			}
			m.Set(k, v)
		case elemListStart:
			k, err := r.name()
			if err != nil {
				return nil, err
			}
			items := []string{}
			for {
				it, err := r.byte()
				if err != nil {
					return nil, err
				}
				if it == elemListEnd {
					break
				}
				if it != elemListItem {
					return nil, fmt.Errorf("%w: element %d inside list at offset %d", ErrMalformed, it, r.off-1)
				}
				v, err := r.value()
				if err != nil {
					return nil, err
				}
				items = append(items, v)
			}
			m.Set(k, items)
		case elemSectionStart:
			k, err := r.name()
			if err != nil {
				return nil, err
			}
			sub, err := decodeSection(r, depth+1)
			if err != nil {
				return nil, err
			}
			m.Set(k, sub)
		default:
			return nil, fmt.Errorf("%w: unknown element type %d at offset %d", ErrMalformed, t, r.off-1)
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("%w: section not closed", ErrMalformed)
	}
	return m, nil
}

// Packet is one VICI packet.
type Packet struct {
	Type    byte
	Name    string // for named types
	Message *Message
}

func named(t byte) bool {
	return t == CmdRequest || t == EventRegister || t == EventUnregister || t == EventPacket
}

// ReadPacket reads one length-prefixed segment and decodes the packet in it.
func ReadPacket(rd io.Reader) (*Packet, error) {
	var l [4]byte
	if _, err := io.ReadFull(rd, l[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(l[:])
	if n == 0 || n > MaxSegment {
		return nil, fmt.Errorf("%w: segment length %d", ErrMalformed, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(rd, b); err != nil {
		return nil, err
	}
	return DecodePacket(b)
}

// DecodePacket decodes a packet from one transport segment.
func DecodePacket(b []byte) (*Packet, error) {
	r := &reader{b: b}
	t, err := r.byte()
	if err != nil {
		return nil, err
	}
	if t > EventPacket {
		return nil, fmt.Errorf("%w: packet type %d", ErrMalformed, t)
	}
	p := &Packet{Type: t}
	if named(t) {
		if p.Name, err = r.name(); err != nil {
			return nil, err
		}
	}
	if p.Message, err = DecodeMessage(b[r.off:]); err != nil {
		return nil, err
	}
	return p, nil
}

// WritePacket frames and writes p.
func WritePacket(w io.Writer, p *Packet) error {
	var b bytes.Buffer
	b.Write([]byte{0, 0, 0, 0})
	b.WriteByte(p.Type)
	if named(p.Type) {
		if err := putName(&b, p.Name); err != nil {
			return err
		}
	}
	if p.Message != nil {
		if err := p.Message.encode(&b); err != nil {
			return err
		}
	}
	if b.Len()-4 > MaxSegment {
		return fmt.Errorf("vicitest: packet of %d bytes exceeds segment limit", b.Len()-4)
	}
	out := b.Bytes()
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	_, err := w.Write(out)
	return err
}

// Text renders m like swanctl.conf, in wire order. Values that are long or not
// printable are shown as their length and SHA-256 prefix, so golden files
// stay readable and stable.
func (m *Message) Text() string {
	var b strings.Builder
	m.text(&b, "")
	return b.String()
}

func showValue(v string) string {
	printable := true
	for _, c := range []byte(v) {
		if c < 0x20 || c > 0x7e {
			printable = false
			break
		}
	}
	if printable && len(v) <= 80 {
		return v
	}
	h := sha256.Sum256([]byte(v))
	return fmt.Sprintf("<blob %d bytes sha256:%x>", len(v), h[:6])
}

func (m *Message) text(b *strings.Builder, ind string) {
	for _, k := range m.keys {
		switch v := m.vals[k].(type) {
		case string:
			fmt.Fprintf(b, "%s%s = %s\n", ind, k, showValue(v))
		case []string:
			items := make([]string, len(v))
			for i, it := range v {
				items[i] = showValue(it)
			}
			fmt.Fprintf(b, "%s%s = [%s]\n", ind, k, strings.Join(items, ", "))
		case *Message:
			fmt.Fprintf(b, "%s%s {\n", ind, k)
			v.text(b, ind+"  ")
			fmt.Fprintf(b, "%s}\n", ind)
		}
	}
}
