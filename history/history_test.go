package history

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func writeSample(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, NewClock(), Header{RunID: "r1", Seed: 42, Scenario: "steady-state"})
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.Op(Record{Client: "smtp-1", Kind: KindSMTPSend, Scope: ScopeOp, Attempt: 1, MsgID: "r1.smtp-1.1", Rcpt: []string{"user0001@example.test"}, BodySHA256: "ab", Start: 10, End: 20, Outcome: OK, Class: "smtp:250 2.0.0"}))
	must(w.Phase(PhaseFinalRead, 1, ""))
	must(w.Final(Record{Mailbox: "user0001@example.test/INBOX", UIDValidity: 7, UID: 1, MsgID: "r1.smtp-1.1", BodySHA256: "ab", Start: 30, Attempt: 1}))
	must(w.Phase(PhaseFinalReadDone, 1, ""))
	now := time.Now()
	must(w.Event(KindFaultInject, "region-loss", "a", now, now.Add(time.Millisecond), errors.New("boom")))
	must(w.Close())
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	data := writeSample(t)
	rd, err := NewReader("h", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if h := rd.Header(); h.RunID != "r1" || h.Seed != 42 || h.Version != SchemaVersion || h.BaseTime.IsZero() {
		t.Fatalf("header = %+v", h)
	}
	var types []Type
	for {
		r, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, r.Type)
		if r.Type == TypeEvent && r.Kind == KindFaultInject {
			if r.Outcome != Fail || r.Detail != "boom" || r.End-r.Start != Offset(time.Millisecond) {
				t.Fatalf("fault event = %+v", r)
			}
		}
	}
	want := []Type{TypeOp, TypeEvent, TypeFinal, TypeEvent, TypeEvent}
	if len(types) != len(want) {
		t.Fatalf("types = %v, want %v", types, want)
	}
}

func TestWriterRejectsMalformed(t *testing.T) {
	w, err := NewWriter(io.Discard, NewClock(), Header{RunID: "r"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	bad := []Record{
		{Client: "c", Kind: KindSMTPSend, Scope: ScopeOp, Outcome: OK},          // no msg id
		{Client: "c", Kind: "x", Scope: ScopeOp, Outcome: "maybe"},              // bad outcome
		{Client: "c", Kind: "x", Scope: "sometimes", Outcome: OK},               // bad scope
		{Client: "c", Kind: "x", Scope: ScopeOp, Outcome: OK, Start: 5, End: 4}, // end before start
	}
	for i, r := range bad {
		if err := w.Op(r); err == nil {
			t.Errorf("record %d accepted: %+v", i, r)
		}
	}
	if err := w.Final(Record{Mailbox: "m"}); err == nil {
		t.Error("final record without uid accepted")
	}
}

func TestReaderNamesTheBadLine(t *testing.T) {
	data := writeSample(t)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	cases := map[string]struct {
		body string
		line int
	}{
		"truncated last line": {strings.Join(lines[:3], "\n") + "\n" + lines[3][:len(lines[3])/2], 4},
		"garbage":             {lines[0] + "\n" + lines[1] + "\nnot json\n", 3},
		"unknown field":       {lines[0] + "\n{\"type\":\"op\",\"surprise\":1}\n", 2},
		"bad version":         {strings.Replace(lines[0], `"version":1`, `"version":9`, 1), 1},
		"no header":           {lines[1], 1},
		"second header":       {lines[0] + "\n" + lines[0], 2},
		"empty":               {"", 1},
		// Trailing data after a record: Decoder.More alone misses } and ].
		"trailing brace":   {lines[0] + "\n" + lines[1] + "\n" + lines[2] + "}\n", 3},
		"trailing bracket": {lines[0] + "\n" + lines[1] + "]\n", 2},
		"second object":    {lines[0] + "\n" + lines[1] + lines[1] + "\n", 2},
		"trailing comma":   {lines[0] + "\n" + lines[1] + " ,\n", 2},
		"trailing word":    {lines[0] + " x\n", 1},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			rd, err := NewReader("h.jsonl", strings.NewReader(c.body))
			for err == nil {
				_, err = rd.Next()
			}
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("err = %v, want a LineError", err)
			}
			if le.Line != c.line || !strings.HasPrefix(le.Error(), "h.jsonl:") {
				t.Fatalf("err = %v, want line %d", err, c.line)
			}
			if strings.HasPrefix(name, "trailing") || name == "second object" {
				if !strings.Contains(err.Error(), "after the JSON object: one record per line, nothing after it") {
					t.Fatalf("err = %v, want it to name the trailing data", err)
				}
			}
		})
	}
}

func TestConcurrentWritersAndPeriodicFlush(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.jsonl")
	w, err := Create(path, NewClock(), Header{RunID: "r"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				now := w.Now()
				if err := w.Op(Record{Client: "imap", Kind: KindIMAPSearch, Scope: ScopeAttempt, Outcome: OK, Start: now, End: now}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// Without Close, the flusher must still bring the records to disk.
	time.Sleep(FlushInterval + 300*time.Millisecond)
	n := 0
	if _, err := Each(path, func(Record) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 8*500 {
		t.Fatalf("read %d records before Close, want %d", n, 8*500)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Op(Record{Client: "c", Kind: "k", Scope: ScopeOp, Outcome: OK}); err == nil {
		t.Fatal("write after Close accepted")
	}
}

// FuzzReader: on any input the reader ends with io.EOF or an error naming
// a line. Every record it returns validates, and written again by the
// Writer's encoder it reads back the same; an input it reads to the end is,
// by encoding/json's own judge, one JSON object per non-blank line.
func FuzzReader(f *testing.F) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, NewClock(), Header{RunID: "r"})
	_ = w.Op(Record{Client: "c", Kind: KindSMTPSend, Scope: ScopeOp, MsgID: "m", Outcome: Indeterminate})
	_ = w.Close()
	f.Add(buf.Bytes())
	// The checker's kept failing histories are real runs' records.
	files, _ := filepath.Glob("../../reports/check/testdata/*.jsonl")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("{\"type\":\"header\",\"version\":1,\"run_id\":\"r\"}\n{\"type\":\"final\""))
	f.Add([]byte("{\"type\":\"header\",\"version\":1,\"run_id\":\"r\"}}\n"))
	f.Add([]byte("\x00\xff{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rd, err := NewReader("fuzz", bytes.NewReader(data))
		var recs []Record
		if err == nil {
			recs = append(recs, rd.Header())
		}
		for i := 0; err == nil && i < 10000; i++ {
			var rec Record
			if rec, err = rd.Next(); err == nil {
				recs = append(recs, rec)
			}
		}
		if err != nil && err != io.EOF {
			var le *LineError
			if !errors.As(err, &le) || le.Line < 1 {
				t.Fatalf("error %v does not name a line", err)
			}
		}
		for _, rec := range recs {
			if err := rec.Validate(); err != nil {
				t.Fatalf("returned %+v, which does not validate: %v", rec, err)
			}
			line, err := AppendRecord(nil, &rec)
			if err != nil {
				t.Fatal(err)
			}
			var back Record
			if err := DecodeLine(bytes.TrimSpace(line), &back); err != nil || !sameRecord(back, rec) {
				t.Fatalf("%+v written as %s reads back as %+v, %v", rec, line, back, err)
			}
		}
		if err == io.EOF {
			for i, line := range bytes.Split(data, []byte("\n")) {
				if line = bytes.TrimSpace(line); len(line) > 0 && (!json.Valid(line) || line[0] != '{') {
					t.Fatalf("line %d %q read: not one JSON object", i+1, line)
				}
			}
		}
	})
}

// sameRecord compares two records, an empty list equal to none and the
// base times as instants (a time zone's name does not survive JSON).
func sameRecord(a, b Record) bool {
	if !a.BaseTime.Equal(b.BaseTime) {
		return false
	}
	a.BaseTime, b.BaseTime = time.Time{}, time.Time{}
	for _, r := range []*Record{&a, &b} {
		if len(r.Rcpt) == 0 {
			r.Rcpt = nil
		}
		if len(r.Flags) == 0 {
			r.Flags = nil
		}
	}
	return reflect.DeepEqual(a, b)
}
