package history

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"
)

// decodeSeeds are odd record lines, one a line in testdata/decode-seeds.jsonl
// (the checker's fuzz targets seed from it too): every key, escapes, numbers
// that only encoding/json may judge, duplicate and unknown keys, trailing data.
var decodeSeeds = func() []string {
	b, err := os.ReadFile("testdata/decode-seeds.jsonl")
	if err != nil {
		panic(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}()

// The fast decoder must agree with encoding/json (what Reader
// uses) on every input it accepts, and defer on the rest.
func FuzzDecodeAgrees(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		line = bytes.TrimSpace(line)
		var d fastDecoder
		var fast, slow Record
		if !d.fast(line, &fast) {
			return
		}
		if err := slowDecode(line, &slow); err != nil {
			t.Fatalf("fast path accepted %q, encoding/json: %v", line, err)
		}
		if len(fast.Rcpt) == 0 && len(slow.Rcpt) == 0 {
			fast.Rcpt, slow.Rcpt = nil, nil
		}
		if len(fast.Flags) == 0 && len(slow.Flags) == 0 {
			fast.Flags, slow.Flags = nil, nil
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q:\nfast %+v\nslow %+v", line, fast, slow)
		}
	})
}

func TestDecodeSeedsAgree(t *testing.T) {
	fastN := 0
	for _, s := range decodeSeeds {
		var d fastDecoder
		var fast, slow Record
		if !d.fast([]byte(s), &fast) {
			continue
		}
		fastN++
		if err := slowDecode([]byte(s), &slow); err != nil {
			t.Fatalf("%s: fast accepted, slow: %v", s, err)
		}
	}
	if fastN < 5 {
		t.Fatalf("fast path took only %d seeds", fastN)
	}
}

// plainEnd's word-at-a-time scan must agree with the byte-by-byte one,
// whatever the byte, where it falls in a word and what surrounds it.
func TestPlainEnd(t *testing.T) {
	naive := func(b []byte, i int) int {
		for ; i < len(b); i++ {
			if c := b[i]; c == '"' || c == '\\' || c < 0x20 || c >= 0x80 {
				return i
			}
		}
		return i
	}
	for n := 0; n <= 19; n++ {
		for pos := 0; pos < n; pos++ {
			for c := 0; c < 256; c++ {
				for _, fill := range []byte{'a', ' ', 0x7f, '#', '!', ']', 0x21, 0x5b} {
					b := bytes.Repeat([]byte{fill}, n)
					b[pos] = byte(c)
					for from := 0; from <= min(n, 3); from++ {
						if got, want := plainEnd(b, from), naive(b, from); got != want {
							t.Fatalf("plainEnd(%q, %d) = %d, want %d", b, from, got, want)
						}
					}
				}
			}
		}
	}
}
