package harness

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// fuzzDescriptors are real descriptors, each parsed under its own name so
// that its sources and base resolve: the reference, the second stack, the
// seeded-defect overlays and the test stacks.
func fuzzDescriptors(f *testing.F) []string {
	variants, err := filepath.Glob("../fixtures/stacks/defects/*/stack.yaml")
	if err != nil || len(variants) == 0 {
		f.Fatalf("no defect variants to seed from: %v", err)
	}
	return append([]string{referenceStack, eximCyrusStack, "testdata/toy/stack.yaml", "testdata/overlay/stack.yaml", "testdata/broken.yaml"}, variants...)
}

// FuzzParse: whatever the bytes, Parse ends (aliases or not) with either
// a *DescriptorError whose problems each carry a line of the file (or
// none), or a descriptor that keeps every promise validation makes:
// services with an image and a role in start order, links whose upstream
// resolves, file sources inside the allowed folders, numbers in bounds.
// Written out again, a descriptor that is not an overlay parses to itself.
func FuzzParse(f *testing.F) {
	names := fuzzDescriptors(f)
	for i, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, uint8(i))
	}
	f.Add([]byte("version: 1\nservices:\n  a: {image: i, role: mta, files: [{path: /x, source: ../../../etc/passwd}]}\n"), uint8(0))
	f.Add([]byte("version: 1\nusers: {count: .nan}\nservices:\n  a: {image: i, role: mta, ports: {p: 1.5}, stop_timeout: -1s}\n"), uint8(2))
	f.Add([]byte("version: 1\nbase: ../../reference/stack.yaml\nservices:\n  mta-a: {files: [{path: /x, source: /etc/passwd}]}\n"), uint8(5))
	f.Add([]byte("a: &a [*a, *a]\nb: &b [*a, *a, *a]\nservices: [*b, *b, *b]\n"), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		name := names[int(which)%len(names)]
		d, err := Parse(name, data)
		if err != nil {
			var de *DescriptorError
			if !errors.As(err, &de) || len(de.Problems) == 0 || de.File != name {
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
		checkDescriptor(t, d)
		if d.Base != "" {
			return // an overlay's merged form would merge into its base again
		}
		out, err := yaml.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		d2, err := Parse(name, out)
		if err != nil {
			t.Fatalf("written out, the descriptor does not parse:\n%s\n%v", out, err)
		}
		if out2, _ := yaml.Marshal(d2); !bytes.Equal(out, out2) {
			t.Fatalf("written out and parsed again, the descriptor changed:\n%s\n---\n%s", out, out2)
		}
	})
}

// checkDescriptor holds a descriptor Parse accepted to what validation
// promises.
func checkDescriptor(t *testing.T, d *Descriptor) {
	t.Helper()
	if d.Version != 1 || len(d.Services) == 0 || d.Name == "" {
		t.Fatalf("version %d, %d services, name %q", d.Version, len(d.Services), d.Name)
	}
	if got := d.ServiceNames(); len(got) != len(d.Services) {
		t.Fatalf("start order %v of %d services", got, len(d.Services))
	}
	if d.Users.Count < 0 || d.Users.Count > MaxUsers {
		t.Fatalf("users.count %d", d.Users.Count)
	}
	for name, s := range d.Services {
		if s.Name != name || s.Image == "" || s.Role == "" {
			t.Fatalf("service %q: %+v", name, s)
		}
		for _, dur := range []Duration{s.StopTimeout, s.Ready.Timeout} {
			if dur < 0 || dur.Std() > MaxDuration {
				t.Fatalf("service %q: duration %s", name, dur.Std())
			}
		}
		for _, p := range s.Ports {
			if p < 1 || p > 65535 {
				t.Fatalf("service %q: port %d", name, p)
			}
		}
		for _, f := range s.Files {
			if f.Source == "" {
				continue
			}
			real, err := d.sourcePath(f.Source)
			if err != nil {
				t.Fatalf("service %q: accepted source %s: %v", name, f.Source, err)
			}
			roots := slices.Clone(d.sourceRoots())
			for i, r := range roots {
				if rr, err := filepath.EvalSymlinks(r); err == nil {
					roots[i] = rr
				}
			}
			if !insideAny(real, roots) {
				t.Fatalf("service %q: source %s is %s, outside %v", name, f.Source, real, roots)
			}
		}
	}
	for _, l := range d.Links {
		if l.Listen < 1 || l.Listen > 65535 {
			t.Fatalf("link %q: listen %d", l.Name, l.Listen)
		}
		svc, port, _ := strings.Cut(l.Upstream, ":")
		s, ok := d.Services[svc]
		if !ok {
			t.Fatalf("link %q: upstream %q", l.Name, l.Upstream)
		}
		if _, err := upstreamPort(s, port); err != nil {
			t.Fatalf("link %q: %v", l.Name, err)
		}
	}
}
