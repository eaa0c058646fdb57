package check

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/mailchaos/mailchaos/loadgen/history"
)

// historySeeds are the histories of testdata/ (real failures, kept) and
// a generated one.
func historySeeds(f *testing.F) [][]byte {
	files, err := filepath.Glob("testdata/*.jsonl")
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
	if err := genHistory(&buf, 20); err != nil {
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
	rd, err := history.NewReader("h", bytes.NewReader(data))
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
	_, err := scanHistoryN("h", bytes.NewReader(data), func(line int64, rec *history.Record) error {
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

// FuzzReaderAndScannerAgree: history.Reader (encoding/json, one line at
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
	for _, s := range decodeSeeds {
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

// thresholdSeeds are the thresholds of the built-in scenario files and a
// few of every shape.
func thresholdSeeds(f *testing.F) []string {
	files, err := filepath.Glob("../../scenarios/builtin/*.yaml")
	if err != nil || len(files) == 0 {
		f.Fatalf("no built-in scenario files to seed from: %v", err)
	}
	quoted := regexp.MustCompile(`"([a-z0-9_.-]+ *(?:==|!=|<=|>=|<|>) *[^"]+)"`)
	var out []string
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		for _, m := range quoted.FindAllStringSubmatch(string(data), -1) {
			out = append(out, m[1])
		}
	}
	return append(out, "lost == 0", "client_visible_downtime_max == 0s", "latency_smtp.send_p999_s < 2",
		"lost == NaN", "lost < Inf", "delivery_latency_p99_s <= 1e308", "lost >= 0x1p-2", "x", "")
}

// FuzzParseThreshold: a threshold that parses names a known metric, one of
// the six operators and a finite value; its expression parses to itself,
// and so does its canonical form "<metric> <op> <number>".
func FuzzParseThreshold(f *testing.F) {
	for _, s := range thresholdSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		th, err := ParseThreshold(expr)
		if err != nil {
			if th != (Threshold{}) {
				t.Fatalf("%q: error %v with a threshold %+v", expr, err, th)
			}
			return
		}
		if !KnownMetric(th.Metric) || !slices.Contains([]string{"==", "!=", "<", "<=", ">", ">="}, th.Op) || math.IsNaN(th.Value) || math.IsInf(th.Value, 0) {
			t.Fatalf("%q parsed to %+v", expr, th)
		}
		again, err := ParseThreshold(th.Expr)
		if err != nil || again != th {
			t.Fatalf("%q: its expression %q parses to %+v, %v", expr, th.Expr, again, err)
		}
		canon := th.Metric + " " + th.Op + " " + strconv.FormatFloat(th.Value, 'g', -1, 64)
		c, err := ParseThreshold(canon)
		if err != nil || c.Metric != th.Metric || c.Op != th.Op || c.Value != th.Value {
			t.Fatalf("%q: canonical %q parses to %+v, %v", expr, canon, c, err)
		}
		// Evaluated, a measured value gives a pass or a failure, never unknown.
		if r := th.Eval(map[string]float64{th.Metric: 0}); r.Status == Unknown {
			t.Fatalf("%q on a measured metric is unknown", expr)
		}
	})
}
