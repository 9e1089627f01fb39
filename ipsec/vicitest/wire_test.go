package vicitest

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// readmeExample is the encoding example of strongSwan's vici README.
var readmeExample = []byte{
	3, 4, 'k', 'e', 'y', '1', 0, 6, 'v', 'a', 'l', 'u', 'e', '1',
	1, 8, 's', 'e', 'c', 't', 'i', 'o', 'n', '1',
	1, 11, 's', 'u', 'b', '-', 's', 'e', 'c', 't', 'i', 'o', 'n',
	3, 4, 'k', 'e', 'y', '2', 0, 6, 'v', 'a', 'l', 'u', 'e', '2',
	2,
	4, 5, 'l', 'i', 's', 't', '1',
	5, 0, 5, 'i', 't', 'e', 'm', '1',
	5, 0, 5, 'i', 't', 'e', 'm', '2',
	6,
	2,
}

func TestReadmeExample(t *testing.T) {
	m := NewMessage().Set("key1", "value1").Set("section1",
		NewMessage().Set("sub-section", NewMessage().Set("key2", "value2")).Set("list1", []string{"item1", "item2"}))
	got, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, readmeExample) {
		t.Errorf("encoding differs:\n got %v\nwant %v", got, readmeExample)
	}
	back, err := DecodeMessage(readmeExample)
	if err != nil {
		t.Fatal(err)
	}
	want := "key1 = value1\nsection1 {\n  sub-section {\n    key2 = value2\n  }\n  list1 = [item1, item2]\n}\n"
	if diff := cmp.Diff(want, back.Text()); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
}

func TestDecodeMalformed(t *testing.T) {
	for name, b := range map[string][]byte{
		"truncated name":       {3, 4, 'k'},
		"truncated value":      {3, 1, 'k', 0, 5, 'a'},
		"missing value length": {3, 1, 'k', 0},
		"unbalanced end":       {2},
		"unclosed section":     {1, 1, 's'},
		"kv inside list":       {4, 1, 'l', 3},
		"unclosed list":        {4, 1, 'l', 5, 0, 0},
		"unknown element":      {9},
	} {
		if _, err := DecodeMessage(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed", name, err)
		}
	}
	deep := bytes.Repeat([]byte{1, 1, 's'}, maxDepth+2)
	if _, err := DecodeMessage(deep); !errors.Is(err, ErrMalformed) {
		t.Errorf("deep nesting: %v", err)
	}
	for name, b := range map[string][]byte{
		"empty":          {},
		"bad type":       {8},
		"truncated name": {0, 5, 'a'},
	} {
		if _, err := DecodePacket(b); err == nil {
			t.Errorf("packet %s: accepted", name)
		}
	}
}

func TestPacketRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	in := &Packet{Type: CmdRequest, Name: "load-conn", Message: NewMessage().Set("a", "b")}
	if err := WritePacket(&buf, in); err != nil {
		t.Fatal(err)
	}
	if got := buf.Bytes()[:6]; !bytes.Equal(got, []byte{0, 0, 0, 17, CmdRequest, 9}) {
		t.Errorf("header %v", got)
	}
	out, err := ReadPacket(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if out.Type != in.Type || out.Name != in.Name || out.Message.Text() != in.Message.Text() {
		t.Errorf("round trip: %+v", out)
	}
}

// FuzzDecode: decode, encode, decode again gives the same tree, and the
// second encoding is byte-identical to the first.
func FuzzDecode(f *testing.F) {
	f.Add(readmeExample)
	f.Add([]byte{4, 0, 6})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMessage(b)
		if err != nil {
			return
		}
		enc, err := m.Encode()
		if err != nil {
			return // duplicate keys collapse; names stay valid
		}
		m2, err := DecodeMessage(enc)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		enc2, err := m2.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("second encoding differs")
		}
		if m.Text() != m2.Text() {
			t.Fatalf("trees differ")
		}
	})
}
