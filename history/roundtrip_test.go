package history_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/mailchaos/mailchaos/history"
)

// everyKind is one record of every type, every op kind under every
// outcome and scope, every event kind, every phase, and the odd strings
// (escapes, non-ASCII, invalid UTF-8 is not: it cannot round-trip).
func everyKind() []history.Record {
	recs := []history.Record{{Type: history.TypeHeader, Version: history.SchemaVersion, RunID: "run-1", Seed: -7, Scenario: "region-loss",
		BaseTime: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)}}
	odd := []string{"", `quote " backslash \ tab` + "\t", "Grüße 日本語 😀 \u2028", "<html>&"}
	n := 0
	for _, kind := range history.OpKinds {
		for _, out := range []history.Outcome{history.OK, history.Fail, history.Indeterminate} {
			for _, scope := range []history.Scope{history.ScopeAttempt, history.ScopeOp} {
				n++
				recs = append(recs, history.Record{Type: history.TypeOp, Client: "client-" + odd[n%4], Kind: kind, Scope: scope, Attempt: n % 3, Outcome: out,
					Class: "smtp:451 4.3.0", Stage: "data-end", Detail: odd[(n+1)%4], MsgID: "run-1.smtp-1." + string(kind), Rcpt: []string{"a@x", odd[n%4]},
					BodySHA256: strings.Repeat("0f", 32), Size: n * 100, Mailbox: "a@x/INBOX", UIDValidity: 4294967295, UID: uint32(n), Flags: []string{`\Seen`, odd[(n+2)%4]},
					Start: history.Offset(n * 1000), End: history.Offset(n*1000 + 10)})
			}
		}
	}
	for _, kind := range history.EventKinds {
		names := []string{"partition"}
		if kind == history.KindPhase {
			names = names[:0]
			for _, p := range history.Phases {
				names = append(names, string(p))
			}
		}
		if kind == history.KindResolve {
			names = []string{history.ResolvePrimary, history.ResolveReplicas, "partition(links: from edge)"}
		}
		for _, name := range names {
			recs = append(recs, history.Record{Type: history.TypeEvent, Client: "scenario", Kind: kind, Name: name, Target: "store-a,store-b", Attempt: 2,
				Outcome: history.OK, Detail: odd[2], Start: 5, End: 5})
		}
	}
	recs = append(recs,
		history.Record{Type: history.TypeSeen, Client: "imap-idle-1", MsgID: "m", Mailbox: "a@x/INBOX", UIDValidity: 1, UID: 1, Start: 9},
		history.Record{Type: history.TypeFinal, Client: "final-read", MsgID: "m", Mailbox: "a@x/INBOX", UIDValidity: 1, UID: 1, BodySHA256: "ab", Flags: []string{}, Attempt: 1, Start: 10},
		history.Record{Type: history.TypeFinal, Client: "replica-read", Target: "store-b", Mailbox: "a@x/INBOX", UID: 2, Size: 1, Start: 11})
	return recs
}

// encodeAll encodes recs with the one encoder.
func encodeAll(t *testing.T, recs []history.Record) []byte {
	t.Helper()
	var out []byte
	for i := range recs {
		var err error
		if out, err = history.AppendRecord(out, &recs[i]); err != nil {
			t.Fatalf("encode record %d: %v", i+1, err)
		}
	}
	return out
}

// TestRoundTripEveryKind: encode → decode → encode gives the same bytes
// for every record kind, through both decoders' entry points (Reader and
// the parallel Scan), and the decoded records equal the ones encoded.
func TestRoundTripEveryKind(t *testing.T) {
	recs := everyKind()
	data := encodeAll(t, recs)
	read, err := history.ReadAll("every-kind", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var scanned []history.Record
	if _, err := history.Scan(context.Background(), "every-kind", bytes.NewReader(data), func(_ int64, r *history.Record) error {
		scanned = append(scanned, r.Clone())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string][]history.Record{"Reader": read, "Scan": scanned} {
		if again := encodeAll(t, got); !bytes.Equal(again, data) {
			t.Errorf("%s: encode → decode → encode differs:\n got %s\nwant %s", name, again, data)
		}
		if len(got) != len(recs) {
			t.Fatalf("%s: %d records, want %d", name, len(got), len(recs))
		}
		for i := range recs {
			w, g := recs[i], got[i]
			if len(w.Flags) == 0 && len(g.Flags) == 0 {
				w.Flags, g.Flags = nil, nil // omitted when empty: nil and [] are one
			}
			if !reflect.DeepEqual(w, g) {
				t.Errorf("%s: record %d:\n got %+v\nwant %+v", name, i+1, g, w)
			}
		}
	}
}

// schema compiles the embedded schema.
func schema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(history.Schema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("history.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("history.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

// validateLines checks every non-blank line of a history against the
// schema and with Reader, returning how many lines it checked.
func validateLines(t *testing.T, sch *jsonschema.Schema, name string, r io.Reader) int {
	t.Helper()
	var all bytes.Buffer
	sc := bufio.NewScanner(io.TeeReader(r, &all))
	sc.Buffer(nil, history.MaxLineBytes)
	n := 0
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		n++
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(line))
		if err != nil {
			t.Fatalf("%s:%d: %v", name, n, err)
		}
		if err := sch.Validate(v); err != nil {
			t.Errorf("%s:%d: schema: %v", name, n, err)
		}
	}
	if _, err := history.ReadAll(name, &all); err != nil {
		t.Errorf("%s: the schema accepts what Reader refuses: %v", name, err)
	}
	return n
}

// TestSchemaAcceptsRealHistories holds the schema to real histories (the
// runs kept in reports/check/testdata/real) and to every record kind as
// Writer writes it: each line validates, and Reader reads each history
// whole. (The hand-made histories of the checker's tests are not held to
// it: they omit the header's base_time and use hashes that are not hex,
// which Reader accepts and the schema, describing what Writer writes, does
// not.)
func TestSchemaAcceptsRealHistories(t *testing.T) {
	sch := schema(t)
	real, _ := filepath.Glob("../reports/check/testdata/real/*.jsonl.gz")
	if len(real) < 2 {
		t.Fatalf("%d real histories, want at least 2", len(real))
	}
	lines := 0
	for _, path := range real {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		lines += validateLines(t, sch, path, zr)
		f.Close()
	}
	lines += validateLines(t, sch, "every-kind", bytes.NewReader(encodeAll(t, everyKind())))
	t.Logf("%d lines of %d real histories and every record kind validate", lines, len(real))
}
