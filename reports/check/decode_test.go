package check

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"hash/maphash"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mailchaos/mailchaos/history"
)

// FuzzRun feeds arbitrary bytes to the entry point: never a panic, and an
// error always names the line.
func FuzzRun(f *testing.F) {
	var buf bytes.Buffer
	if err := genHistory(&buf, 30); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	lines := strings.SplitAfter(buf.String(), "\n")
	f.Add([]byte(strings.Join(lines[:len(lines)/2], "")))
	f.Add([]byte(lines[0] + lines[1][:len(lines[1])/2]))
	f.Add([]byte(""))
	f.Add([]byte("{}\n"))
	seeds, err := os.ReadFile("../../history/testdata/decode-seeds.jsonl")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range strings.Split(strings.TrimSuffix(string(seeds), "\n"), "\n") {
		f.Add([]byte(lines[0] + s + "\n"))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := RunReader(context.Background(), "fuzz", bytes.NewReader(data), Policy{Thresholds: []string{"lost == 0"}})
		if err != nil {
			var le *history.LineError
			if !errors.As(err, &le) || le.Line < 1 || !strings.HasPrefix(err.Error(), "fuzz:") {
				t.Fatalf("error does not name a line: %v", err)
			}
			return
		}
		if v.Status == "" || len(v.Checks) < 3 || len(v.Checks) > 4 || (len(v.Checks) == 4 && v.Checks[3].Name != CheckReplicas) {
			t.Fatalf("verdict without status or checks: %+v", v)
		}
		if v.Status == Success && !v.Ledger.FinalRead {
			t.Fatal("success without a final read")
		}
		if r := result(v, CheckReplicas); r.Status == Success && (!v.Ledger.FinalRead || v.Metrics["replicas_read"] != float64(len(v.Replicas))) {
			t.Fatalf("replicas success with a replica unread or no final read: %+v", v.Replicas)
		}
	})
}

// Reading a file (fast decoder, aliased strings) and judging the same
// records in memory must give the same verdict.
func TestFileAndRecordsAgree(t *testing.T) {
	var buf bytes.Buffer
	if err := genHistory(&buf, 3000); err != nil {
		t.Fatal(err)
	}
	// Add failures so that evidence is cited.
	extra := []history.Record{send("lost-1", ok, 10, 20), fin("ghost", inbox1, 99999, 1), seen("m-x", inbox2, 5, 5),
		rread("store-b", 1), rfin("store-b", "ghost", inbox1, 1), rfin("store-b", "lost-1", inbox2, 2), rdone("store-b", 1)}
	for _, r := range extra {
		b, _ := json.Marshal(r)
		buf.Write(b)
		buf.WriteByte('\n')
	}
	path := filepath.Join(t.TempDir(), "h.jsonl")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	fromFile := fileMatchesMemory(t, path, Policy{Thresholds: []string{"lost == 0", "delivery_latency_p99_s < 30"}})
	if fromFile.Status != Failure || fromFile.Ledger.Counts[ClassLost] != 1 || fromFile.Ledger.Counts[ClassUnexpected] != 1 {
		t.Fatalf("verdict %s %v", fromFile.Status, fromFile.Ledger.Counts)
	}
	if ev := result(fromFile, CheckLedger).Evidence; len(ev) == 0 || len(ev[0].Ops) == 0 {
		t.Fatalf("evidence = %+v", ev)
	}
	if r := result(fromFile, CheckReplicas); r.Status != Failure || fromFile.Metrics["replica_missing"] != 3000 || fromFile.Metrics["replica_extra"] != 1 || len(r.Evidence) == 0 || len(r.Evidence[0].Ops) == 0 {
		t.Fatalf("replicas = %+v, metrics %v", r, fromFile.Metrics)
	}
}

func TestRunErrorsNameTheLine(t *testing.T) {
	head := `{"type":"header","version":1,"run_id":"r","start":0}` + "\n"
	for name, tc := range map[string]struct {
		data string
		line int
	}{
		"empty":            {"", 1},
		"no header":        {`{"type":"op","client":"c","kind":"k","scope":"op","outcome":"ok","start":0}` + "\n", 1},
		"truncated":        {head + `{"type":"op","cli`, 2},
		"bad outcome":      {head + "\n" + `{"type":"op","client":"c","kind":"k","scope":"op","outcome":"maybe","start":0}`, 3},
		"second header":    {head + head, 2},
		"end before start": {head + `{"type":"op","client":"c","kind":"k","scope":"op","outcome":"ok","start":5,"end":4}`, 2},
		// Trailing data after a record, on the fast path's lines and the slow path's.
		"trailing brace":   {head + `{"type":"op","client":"c","kind":"k","scope":"op","outcome":"ok","start":0}` + "\n" + `{"type":"op","client":"c","kind":"k","scope":"op","outcome":"ok","start":0}}`, 3},
		"trailing bracket": {head + `{"type":"op","client":"c","kind":"k","scope":"op","outcome":"ok","start":0}]`, 2},
		"header brace":     {`{"type":"header","version":1,"run_id":"r","start":0}}` + "\n", 1},
		"trailing object":  {head + "\n\n" + `{"type":"seen","mailbox":"m","uid":1,"start":0} {}`, 4},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := RunReader(context.Background(), "h.jsonl", strings.NewReader(tc.data), Policy{})
			var le *history.LineError
			if !errors.As(err, &le) || le.Line != tc.line {
				t.Fatalf("err = %v, want line %d", err, tc.line)
			}
		})
	}
	_, err := Run(context.Background(), filepath.Join(t.TempDir(), "missing"), Policy{})
	if err == nil || !strings.Contains(err.Error(), "open history") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestRunCancelled(t *testing.T) {
	var buf bytes.Buffer
	if err := genHistory(&buf, 30000); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := RunReader(ctx, "h", &buf, Policy{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

// The message-ID table keeps every ID apart across growth.
func TestIDTableGrows(t *testing.T) {
	tab := newIDTable(maphash.MakeSeed(), 0)
	for round := range 2 {
		for i := range 5000 {
			id := "m." + strconv.Itoa(i)
			got, isNew := tab.id(id)
			if got != uint32(i) || isNew != (round == 0) || tab.name(got) != id {
				t.Fatalf("round %d: id(%q) = %d, %v", round, id, got, isNew)
			}
		}
	}
}
