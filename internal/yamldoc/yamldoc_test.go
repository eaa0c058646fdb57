package yamldoc

import (
	"errors"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestUnmarshal(t *testing.T) {
	cases := []struct {
		name, in string
		keys     int    // top-level keys of the document read
		err      string // "" for none
		line     int    // of an *Error
	}{
		{"one document", "a: 1\nb: 2\n", 2, "", 0},
		{"start and end markers", "---\na: 1\n...\n", 1, "", 0},
		{"windows line ends", "a: 1\r\nb: 2\r\n", 2, "", 0},
		{"empty", "", 0, "", 0},
		{"comments only", "# nothing\n", 0, "", 0},
		{"a second document", "a: 1\n---\nb: 2\n", 0, "line 2: a second YAML document", 2},
		{"an empty second document", "a: 1\n---\n", 0, "a second YAML document", 2},
		{"garbage after ---", "a: 1\n---\nb: [\n", 0, "line 3", 0},
		{"garbage without ---", "a: 1\n}\n", 0, "line 1", 0},
		{"broken first", "a: [\n", 0, "line 1", 0},
		{"a carriage return alone", "a: 1\r\nb: 2\rc: 3\n", 0, "line 2: a carriage return (\\r) not followed by a newline", 2},
		{"a carriage return at the end", "\r0", 0, "carriage return", 1},
		{"NEL", "a: 1\nb: x\u0085y\n", 0, "line 2: a next-line character (U+0085)", 2},
		{"LS", "a: \"x\u2028y\"\n", 0, "line 1: a line separator (U+2028)", 1},
		{"PS before a lone CR", "a: \u2029\n\r", 0, "paragraph separator", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var root yaml.Node
			err := Unmarshal([]byte(tc.in), &root)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := len(root.Content); tc.keys > 0 && (got != 1 || len(root.Content[0].Content) != 2*tc.keys) {
					t.Fatalf("read %+v", root)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want one with %q", err, tc.err)
			}
			var ye *Error
			if errors.As(err, &ye) != (tc.line > 0) || (ye != nil && ye.Line != tc.line) {
				t.Fatalf("error %#v, want an *Error at line %d", err, tc.line)
			}
		})
	}
}
