package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
)

func TestDurations(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		got, want string
	}{
		{dur(0), "00:00:00"},
		{dur(-time.Second), "00:00:00"},
		{dur(time.Hour + 2*time.Minute + 3*time.Second + 900*time.Millisecond), "01:02:03"},
		{dur(24*time.Hour - time.Second), "23:59:59"},
		{dur(26 * time.Hour), "1d02h"},
		{dur(7*24*time.Hour + 49*time.Hour), "1w2d"},
		{since(now, time.Time{}), "never"},
		{since(now, now.Add(-42*time.Second)), "00:00:42"},
		{until(now, time.Time{}), "-"},
		{until(now, now), "expired"},
		{until(now, now.Add(90*time.Second)), "00:01:30"},
		{attrString([]api.Attr{api.AttrRouteInstalled, api.AttrDynamic, api.AttrNAT}), "DNT1"},
		{attrString([]api.Attr{"weird", api.AttrStatic}), "S(weird)"},
		{attrString(nil), "-"},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("case %d: got %q, want %q", i, tt.got, tt.want)
		}
	}
}

func TestTableAlignment(t *testing.T) {
	tb := newTable(column{title: "Name"}, column{title: "N", right: true}, column{title: "Note"})
	tb.add("a", "1", "")
	tb.add("longer", "100", "x")
	var b bytes.Buffer
	if err := tb.write(&b); err != nil {
		t.Fatal(err)
	}
	want := "Name      N  Note\n------  ---  ----\na         1\nlonger  100  x\n"
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}
