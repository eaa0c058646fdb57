package history_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/mailchaos/mailchaos/history"
	"github.com/mailchaos/mailchaos/history/synth"
)

// readerRecords decodes data with Reader, the sequential reference:
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
	if err := synth.Generate(&buf, 200); err != nil {
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
// numbers Reader returns, and ends with the same error, whatever the
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
			for _, bufBytes := range []int{1, 97, 4096, history.ChunkBytes} {
				t.Run(fmt.Sprintf("%s/workers=%d/buf=%d", name, workers, bufBytes), func(t *testing.T) {
					var lines []int64
					var recs []history.Record
					_, err := history.ScanN(context.Background(), "h", open(), func(line int64, r *history.Record) error {
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
						t.Fatalf("records differ from Reader's")
					}
				})
			}
		}
	}
}

// An error from fn stops the pipeline at that record and names its line.
func TestScanStopsOnFnError(t *testing.T) {
	var buf bytes.Buffer
	if err := synth.Generate(&buf, 2000); err != nil {
		t.Fatal(err)
	}
	n := 0
	_, err := history.ScanN(context.Background(), "h", &buf, func(int64, *history.Record) error {
		if n++; n == 5000 {
			return io.ErrUnexpectedEOF
		}
		return nil
	}, 3, 512)
	if n != 5000 || err == nil || err.Error() != "h:5000: unexpected EOF" {
		t.Fatalf("after %d records: %v", n, err)
	}
}

// historySeeds are the histories of testdata/ (real failures, kept) and
// a generated one.
func historySeeds(f *testing.F) [][]byte {
	files, err := filepath.Glob("../reports/check/testdata/*.jsonl")
	if err != nil || len(files) == 0 {
		f.Fatalf("no histories in testdata/ to seed from: %v", err)
	}
	var out [][]byte
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	var buf bytes.Buffer
	if err := synth.Generate(&buf, 20); err != nil {
		f.Fatal(err)
	}
	return append(out, buf.Bytes())
}

// decoded is what a decoder made of a history: each record (as JSON, so
// that strings aliasing a reused buffer are copied) with its line, and
// the error that ended it.
type decoded struct {
	lines []int64
	recs  []string
	err   string
}

func viaReader(data []byte) decoded {
	var d decoded
	rd, err := history.NewSlowReader("h", bytes.NewReader(data))
	if err == nil {
		h := rd.Header()
		d.add(int64(rd.Line()), &h)
		for {
			var rec history.Record
			if rec, err = rd.Next(); err != nil {
				break
			}
			d.add(int64(rd.Line()), &rec)
		}
	}
	if err != nil && err != io.EOF {
		d.err = err.Error()
	}
	return d
}

func viaScanner(data []byte, workers, bufBytes int) decoded {
	var d decoded
	_, err := history.ScanN(context.Background(), "h", bytes.NewReader(data), func(line int64, rec *history.Record) error {
		d.add(line, rec)
		return nil
	}, workers, bufBytes)
	if err != nil {
		d.err = err.Error()
	}
	return d
}

func (d *decoded) add(line int64, rec *history.Record) {
	b, err := json.Marshal(rec)
	if err != nil {
		panic(err)
	}
	d.lines = append(d.lines, line)
	d.recs = append(d.recs, string(b))
}

// FuzzReaderAndScannerAgree: Reader (encoding/json, one line at
// a time) and the checker's scanner (the fast decoder, chunks decoded by
// several workers) read the same records from the same lines of any
// input, and fail on the same line with the same error. What they accept
// is JSON by encoding/json's own judge, one object per line, and
// validates.
func FuzzReaderAndScannerAgree(f *testing.F) {
	for _, h := range historySeeds(f) {
		f.Add(h, uint8(2), uint16(256))
		lines := bytes.SplitAfter(h, []byte("\n"))
		if len(lines) > 2 {
			// A record with trailing data, the bug this target was written for.
			bad := slices.Concat(bytes.Join(lines[:2], nil), bytes.TrimSuffix(lines[2], []byte("\n")), []byte("}\n"), bytes.Join(lines[3:], nil))
			f.Add(bad, uint8(1), uint16(64))
		}
	}
	for _, s := range history.DecodeSeeds {
		f.Add([]byte(`{"type":"header","version":1,"run_id":"r","start":0}`+"\n"+s+"\n"), uint8(3), uint16(32))
	}
	f.Fuzz(func(t *testing.T, data []byte, workers uint8, bufBytes uint16) {
		want := viaReader(data)
		got := viaScanner(data, 1+int(workers)%3, 16+int(bufBytes)%4096)
		if want.err != got.err {
			t.Fatalf("errors differ:\nreader:  %s\nscanner: %s", want.err, got.err)
		}
		if !slices.Equal(want.lines, got.lines) || !slices.Equal(want.recs, got.recs) {
			t.Fatalf("records differ:\nreader:  %v %q\nscanner: %v %q", want.lines, want.recs, got.lines, got.recs)
		}
		if want.err == "" && len(want.recs) == 0 {
			t.Fatal("an input without a header was accepted")
		}
		// An accepted history is, by encoding/json's own judge, one JSON
		// object per non-blank line.
		if want.err == "" {
			for i, line := range bytes.Split(data, []byte("\n")) {
				line = bytes.TrimSpace(line)
				if len(line) > 0 && (!json.Valid(line) || line[0] != '{') {
					t.Fatalf("line %d %q accepted: not one JSON object", i+1, line)
				}
			}
		}
	})
}

// BenchmarkDecode decodes the lines of a generated history with the fast
// decoder, as a worker does (-benchmem; MB/s is history bytes).
func BenchmarkDecode(b *testing.B) {
	var buf strings.Builder
	if err := synth.Generate(&buf, 2000); err != nil {
		b.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")[1:] // no header: it takes encoding/json
	raw := make([][]byte, len(lines))
	for i, l := range lines {
		raw[i] = []byte(l)
	}
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	d := history.NewFastDecoder()
	var rec history.Record
	cpu0 := cpuSeconds()
	b.ResetTimer()
	for range b.N {
		d.Reset()
		for _, l := range raw {
			if err := d.Decode(l, &rec); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric((cpuSeconds()-cpu0)*1e9/float64(b.N*len(raw)), "cpu-ns/line")
}

// cpuSeconds is this process's user+system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
