package check

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/mailchaos/mailchaos/history"
)

// fileMatchesMemory judges the history file at path as Run does (parallel
// decoding) and as history.Reader's records in memory (the sequential
// path), fails t unless the verdicts are the same, and returns Run's.
func fileMatchesMemory(t *testing.T, path string, p Policy) Verdict {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := history.ReadAll(path, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	fromFile, err := Run(context.Background(), path, p)
	if err != nil {
		t.Fatal(err)
	}
	fromMem, err := RunRecords(context.Background(), recs, p)
	if err != nil {
		t.Fatal(err)
	}
	fromFile.History = ""
	a, _ := json.Marshal(fromFile)
	b, _ := json.Marshal(fromMem)
	if !bytes.Equal(a, b) {
		t.Fatalf("file and memory verdicts differ:\n%s\n%s", a, b)
	}
	return fromFile
}

// Every testdata history and a generated one with failures get the same
// verdict from the file (parallel decoding) as from history.Reader's
// records judged in memory, the sequential path.
func TestParallelPathAgrees(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.jsonl"))
	var buf bytes.Buffer
	if err := genHistory(&buf, 5000); err != nil {
		t.Fatal(err)
	}
	buf.WriteString(`{"type":"op","client":"smtp-1","kind":"smtp.send","start":1,"end":2,"scope":"op","attempt":1,"outcome":"ok","msg_id":"lost-1","rcpt":["u@x"],"body_sha256":"ab"}` + "\n")
	gen := filepath.Join(t.TempDir(), "gen.jsonl")
	if err := os.WriteFile(gen, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range append(files, gen) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			fromFile := fileMatchesMemory(t, path, Policy{Thresholds: []string{"lost == 0", "delivery_latency_p99 < 30s"}})
			if fromFile.Status == Success && path != gen {
				t.Fatalf("testdata history passed: %s", fromFile.Reason)
			}
		})
	}
}
