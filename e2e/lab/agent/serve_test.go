package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestServe(t *testing.T) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- Serve(context.Background(), inR, outW); outW.Close() }()

	enc := json.NewEncoder(inW)
	reqs := []Request{
		{ID: 1, Cmd: "sleep 30"},
		{ID: 2, Cmd: "echo two"},
		{ID: 3, Cmd: "exit 5"},
	}
	for _, r := range reqs {
		if err := enc.Encode(r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := io.WriteString(inW, "{not json\n"); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(outR)
	var got []Response
	read := func() {
		if !sc.Scan() {
			t.Fatalf("no response: %v", sc.Err())
		}
		var r Response
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		r.Elapsed = 0
		got = append(got, r)
	}
	for range 3 {
		read()
	}
	// Now cancel the sleeper.
	if err := enc.Encode(Request{ID: 1, Cancel: true}); err != nil {
		t.Fatal(err)
	}
	read()
	inW.Close()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	sort.Slice(got, func(i, j int) bool { return got[i].ID < got[j].ID })
	for i := range got {
		if got[i].ID == 0 {
			got[i].Err = "bad frame"
		}
	}
	want := []Response{
		{ID: 0, Exit: -1, Err: "bad frame"},
		{ID: 1, Exit: -1, Err: "agent: canceled"},
		{ID: 2, Stdout: []byte("two\n")},
		{ID: 3, Exit: 5},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("responses (-want +got):\n%s", diff)
	}
}
