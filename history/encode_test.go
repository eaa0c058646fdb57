package history

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// nasty are strings that exercise every escape of encoding/json.
var nasty = []string{
	"", "smtp-1", "run-1.smtp-2.17", `quote " and backslash \`, "tab\tnewline\ncr\rbs\bff\f",
	"\x00\x01\x1f\x7f", "<html> & </html>", "bad utf-8 \xff\xfe here", "truncated \xe2\x80",
	"line sep \u2028 para sep \u2029", "Grüße 日本語 😀", strings.Repeat("x", 300),
}

// fill sets every field of v (a struct) to a random value, empty ones
// included, and fails on a field kind it does not know: a field added to
// Record must be taught to this test (and to AppendRecord).
func fill(t *testing.T, r *rand.Rand, v reflect.Value) {
	for i := range v.NumField() {
		f, sf := v.Field(i), v.Type().Field(i)
		zero := r.IntN(3) == 0
		switch {
		case sf.Type == reflect.TypeFor[time.Time]():
			if !zero {
				f.Set(reflect.ValueOf(time.Unix(r.Int64N(4e9), r.Int64N(1e9)).In(time.FixedZone("z", 3600*(r.IntN(25)-12)))))
			}
		case f.Kind() == reflect.String:
			if !zero {
				f.SetString(nasty[r.IntN(len(nasty))])
			}
		case f.Kind() == reflect.Int, f.Kind() == reflect.Int64:
			if !zero {
				f.SetInt(r.Int64N(1<<40) - 1<<39)
			}
		case f.Kind() == reflect.Uint32:
			if !zero {
				f.SetUint(uint64(r.Uint32()))
			}
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
			switch n := r.IntN(4); {
			case zero:
			case n == 0:
				f.Set(reflect.MakeSlice(f.Type(), 0, 0)) // empty, not nil: omitted too
			default:
				s := reflect.MakeSlice(f.Type(), n, n)
				for j := range n {
					s.Index(j).SetString(nasty[r.IntN(len(nasty))])
				}
				f.Set(s)
			}
		default:
			t.Fatalf("Record.%s is a %s: teach fill and AppendRecord about it", sf.Name, f.Type())
		}
	}
}

// TestAppendRecordIsEncodingJSON checks the hand-written encoder against
// encoding/json on random records with every field set or empty and every
// kind of string escape.
func TestAppendRecordIsEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	enc.SetEscapeHTML(false)
	for i := range 20000 {
		var rec Record
		fill(t, r, reflect.ValueOf(&rec).Elem())
		want.Reset()
		if err := enc.Encode(&rec); err != nil {
			t.Fatal(err)
		}
		got, err := AppendRecord(nil, &rec)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("record %d:\n got %s\nwant %s", i, got, want.Bytes())
		}
	}
	bad := Record{BaseTime: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, err := AppendRecord(nil, &bad); err == nil {
		t.Error("a base time encoding/json refuses was encoded")
	}
}

// BenchmarkAppendRecord measures encoding one SMTP send record.
func BenchmarkAppendRecord(b *testing.B) {
	rec := Record{Type: TypeOp, Client: "smtp-3", Kind: KindSMTPSend, Start: 123456789, End: 123999999,
		Scope: ScopeOp, Attempt: 1, Outcome: OK, Class: "smtp:250", Stage: "data-end", MsgID: "bench-1.smtp-3.4711",
		Rcpt: []string{"user0002@example.test"}, BodySHA256: strings.Repeat("ab", 32), Size: 10427}
	var buf []byte
	b.ReportAllocs()
	for range b.N {
		buf, _ = AppendRecord(buf[:0], &rec)
	}
}
