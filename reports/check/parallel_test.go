package check

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/mailchaos/mailchaos/loadgen/history"
)

// readerRecords decodes data with history.Reader, the sequential reference:
// every record (header first) with its line, and the error that ended it.
func readerRecords(r io.Reader) (lines []int64, recs []history.Record, err error) {
	rd, err := history.NewReader("h", r)
	if err != nil {
		return nil, nil, err
	}
	lines, recs = []int64{int64(rd.Line())}, []history.Record{rd.Header()}
	for {
		r, err := rd.Next()
		if err == io.EOF {
			return lines, recs, nil
		}
		if err != nil {
			return lines, recs, err
		}
		lines, recs = append(lines, int64(rd.Line())), append(recs, r)
	}
}

// scanInputs are histories that stress the chunked reader: blank and CRLF
// lines, a bad line or a second header mid-file, a truncated last line, a
// line too long for a Scanner and one just short enough.
func scanInputs(t *testing.T) map[string][]byte {
	var buf bytes.Buffer
	if err := genHistory(&buf, 200); err != nil {
		t.Fatal(err)
	}
	s := buf.String()
	mid := strings.IndexByte(s[len(s)/2:], '\n') + len(s)/2 + 1
	head := s[:strings.IndexByte(s, '\n')+1]
	long := func(n int) string {
		return `{"type":"op","detail":"` + strings.Repeat("a", n-len(`{"type":"op","detail":""}`)) + `"}`
	}
	return map[string][]byte{
		"clean":             []byte(s),
		"blank lines, CRLF": []byte(strings.ReplaceAll(s, "\n", "\r\n \n\t\n")),
		"no final newline":  []byte(strings.TrimSuffix(s, "\n")),
		"bad line":          []byte(s[:mid] + `{"type":"op","bogus":1}` + "\n" + s[mid:]),
		"invalid record":    []byte(s[:mid] + `{"type":"op","start":1}` + "\n" + s[mid:]),
		"second header":     []byte(s[:mid] + head + s[mid:]),
		"truncated":         []byte(s[:len(s)-40]),
		"cut mid-line":      []byte(s[:mid+30] + "\n" + s[mid:]),
		"line too long":     []byte(s[:mid] + long(history.MaxLineBytes) + "\n" + s[mid:]),
		"longest line":      []byte(s[:mid] + long(history.MaxLineBytes-1) + "\n" + s[mid:]),
		"header only":       []byte(head),
		"empty":             nil,
		"blank":             []byte("\n \n"),
		"no header":         []byte(s[len(head):]),
	}
}

var errDisk = errors.New("disk error")

// The chunked, parallel reader hands fn exactly the records and line
// numbers history.Reader returns, and ends with the same error, whatever the
// number of workers and wherever the chunk edges fall.
func TestScanChunksAgree(t *testing.T) {
	inputs := scanInputs(t)
	for name, data := range inputs {
		if len(data) > 0 {
			inputs[name+", then a read error"] = data
		}
	}
	for name, data := range inputs {
		// A disk error after the data: the partial last line still counts.
		open := func() io.Reader { return bytes.NewReader(data) }
		if strings.HasSuffix(name, "read error") {
			open = func() io.Reader { return io.MultiReader(bytes.NewReader(data), iotest.ErrReader(errDisk)) }
		}
		wantLines, wantRecs, wantErr := readerRecords(open())
		for _, workers := range []int{1, 2, 5} {
			for _, bufBytes := range []int{1, 97, 4096, chunkBytes} {
				t.Run(fmt.Sprintf("%s/workers=%d/buf=%d", name, workers, bufBytes), func(t *testing.T) {
					var lines []int64
					var recs []history.Record
					_, err := scanHistoryN("h", open(), func(line int64, r *history.Record) error {
						// The record aliases the chunk: keep a deep copy.
						b, _ := json.Marshal(r)
						var c history.Record
						if err := json.Unmarshal(b, &c); err != nil {
							return err
						}
						lines, recs = append(lines, line), append(recs, c)
						return nil
					}, workers, bufBytes)
					if fmt.Sprint(err) != fmt.Sprint(wantErr) {
						t.Fatalf("err = %v, want %v", err, wantErr)
					}
					if fmt.Sprint(lines) != fmt.Sprint(wantLines) {
						t.Fatalf("lines = %v, want %v", lines, wantLines)
					}
					a, _ := json.Marshal(recs)
					b, _ := json.Marshal(wantRecs)
					if !bytes.Equal(a, b) {
						t.Fatalf("records differ from history.Reader's")
					}
				})
			}
		}
	}
}

// An error from fn stops the pipeline at that record and names its line.
func TestScanStopsOnFnError(t *testing.T) {
	var buf bytes.Buffer
	if err := genHistory(&buf, 2000); err != nil {
		t.Fatal(err)
	}
	n := 0
	_, err := scanHistoryN("h", &buf, func(int64, *history.Record) error {
		if n++; n == 5000 {
			return io.ErrUnexpectedEOF
		}
		return nil
	}, 3, 512)
	if n != 5000 || err == nil || err.Error() != "h:5000: unexpected EOF" {
		t.Fatalf("after %d records: %v", n, err)
	}
}

// fileMatchesMemory judges the history file at path as Run does (parallel
// decoding) and as history.Reader's records in memory (the sequential
// path), fails t unless the verdicts are the same, and returns Run's.
func fileMatchesMemory(t *testing.T, path string, p Policy) Verdict {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, recs, err := readerRecords(bytes.NewReader(data))
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
