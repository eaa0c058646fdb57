package scenariofile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mailchaos/mailchaos/faults"
	"github.com/mailchaos/mailchaos/harness"
	"github.com/mailchaos/mailchaos/scenarios/flow"
)

// FuzzParse: whatever the bytes, Parse either returns a scenario that
// flow's own Validate accepts, with every fault spec and selector, count
// and duration in bounds, or a *harness.DescriptorError whose problems
// each carry a line of the file (or none); and it decides the same way
// twice.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("../builtin/*.yaml")
	if err != nil || len(files) == 0 {
		f.Fatalf("no built-in scenario files to seed from: %v", err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("name: x\nproves: y\nlabels: [a]\nfaults: [{at: NaN, spec: \"kill:role=mta\"}]\n"))
	f.Add([]byte("name: x\nproves: y\nlabels: [a]\nnemesis: {menu: [\"kill:*\"], count: 2, hold: [1s, 2s]}\nmin_duration: 25h\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("- x\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("fuzz.yaml", data)
		again, err2 := Parse("fuzz.yaml", data)
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) || (err == nil && !reflect.DeepEqual(s, again)) {
			t.Fatalf("two parses differ: %v / %v", err, err2)
		}
		if err != nil {
			var de *harness.DescriptorError
			if !errors.As(err, &de) || len(de.Problems) == 0 {
				t.Fatalf("error %T without problems: %v", err, err)
			}
			lines := bytes.Count(data, []byte("\n")) + 1
			for _, p := range de.Problems {
				if p.Line < 0 || p.Line > lines || p.Message == "" {
					t.Fatalf("problem on line %d of %d: %q", p.Line, lines, p.Message)
				}
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("parsed a scenario flow refuses: %v", err)
		}
		for _, v := range append([]string{s.Name, s.Proves}, s.Labels...) {
			if v == "" || v != strings.TrimSpace(v) {
				t.Fatalf("name, proves or label %q", v)
			}
		}
		if s.MinDuration < 0 || s.MinDuration > flow.MaxDuration {
			t.Fatalf("min_duration %s", s.MinDuration)
		}
		var specs []string
		for _, fa := range s.Faults {
			checkOffsets(t, fa)
			specs = append(specs, fa.Spec)
		}
		if n := s.Nemesis; n != nil {
			checkOffsets(t, n.Window)
			if n.Count < 0 || n.MaxActive < 1 || n.MinHold < 0 || n.MaxHold < n.MinHold || n.MinGap < 0 || n.MaxGap < n.MinGap ||
				n.MaxHold > flow.MaxDuration || n.MaxGap > flow.MaxDuration || len(n.Menu) == 0 {
				t.Fatalf("nemesis %+v", *n)
			}
			specs = append(specs, n.Menu...)
		}
		for _, spec := range specs {
			fs, err := faults.ParseSpec(spec)
			if err != nil {
				t.Fatalf("accepted spec %q: %v", spec, err)
			}
			if faults.IsSelector(fs.Target) {
				if _, err := faults.ParseSelector(fs.Target, fs.Kind.Target); err != nil {
					t.Fatalf("accepted selector of %q: %v", spec, err)
				}
			}
		}
	})
}

func checkOffsets(t *testing.T, fa flow.FaultAt) {
	t.Helper()
	if fa.At < 0 || fa.For < 0 || fa.At > 1 || fa.For > 1 || fa.At != fa.At || fa.For != fa.For ||
		fa.AtTime < 0 || fa.ForTime < 0 || fa.AtTime > flow.MaxDuration || fa.ForTime > flow.MaxDuration {
		t.Fatalf("offsets %+v", fa)
	}
}
