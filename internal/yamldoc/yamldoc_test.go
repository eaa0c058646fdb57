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
		line     int    // of an *ExtraError
	}{
		{"one document", "a: 1\nb: 2\n", 2, "", 0},
		{"start and end markers", "---\na: 1\n...\n", 1, "", 0},
		{"empty", "", 0, "", 0},
		{"comments only", "# nothing\n", 0, "", 0},
		{"a second document", "a: 1\n---\nb: 2\n", 0, "line 2: a second YAML document", 2},
		{"an empty second document", "a: 1\n---\n", 0, "a second YAML document", 2},
		{"garbage after ---", "a: 1\n---\nb: [\n", 0, "line 3", 0},
		{"garbage without ---", "a: 1\n}\n", 0, "line 1", 0},
		{"broken first", "a: [\n", 0, "line 1", 0},
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
			var ee *ExtraError
			if errors.As(err, &ee) != (tc.line > 0) || (ee != nil && ee.Line != tc.line) {
				t.Fatalf("error %#v, want an ExtraError at line %d", err, tc.line)
			}
		})
	}
}
