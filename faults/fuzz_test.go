package faults

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// specSeeds are the fault specs of the built-in scenario files (the specs
// people write), and one bare spec per kind.
func specSeeds(f *testing.F) []string {
	files, err := filepath.Glob("../scenarios/builtin/*.yaml")
	if err != nil || len(files) == 0 {
		f.Fatalf("no built-in scenario files to seed from: %v", err)
	}
	quoted := regexp.MustCompile(`"([a-z-]+:[^"]*)"`)
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
	for _, k := range Kinds() {
		out = append(out, k.Name+":x", k.Name+":"+AnyTarget)
	}
	return append(out, "latency:wan-a-b:200ms:50ms:downstream:0.5", "latency:l:toxicity=NaN", "kill:role=mta|store,mode=50%", ":", "")
}

// FuzzParseSpec: a spec that parses holds only values its kind's
// parameters accept (finite numbers, bounded durations), and its
// canonical form parses to the same spec; a selector target keeps the
// selector invariants (FuzzParseSelector).
func FuzzParseSpec(f *testing.F) {
	for _, s := range specSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseSpec(in)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fault ") {
				t.Fatalf("error does not name the fault: %v", err)
			}
			return
		}
		if k, ok := Lookup(s.Kind.Name); !ok || k != s.Kind {
			t.Fatalf("%q: kind %q is not the registered one", in, s.Kind.Name)
		}
		if s.Target == "" || strings.Contains(s.Target, ":") {
			t.Fatalf("%q: target %q", in, s.Target)
		}
		for name := range s.Values {
			if s.Kind.param(name) == nil {
				t.Fatalf("%q: value for unknown parameter %s", in, name)
			}
		}
		for _, p := range s.Kind.Params {
			v, ok := s.Values[p.Name]
			if !ok {
				if !p.Optional {
					t.Fatalf("%q: required parameter %s has no value", in, p.Name)
				}
				continue
			}
			if err := p.check(v); err != nil {
				t.Fatalf("%q: accepted %s=%q: %v", in, p.Name, v, err)
			}
			if p.Type == Float {
				if x := s.Values.Float(p.Name); math.IsNaN(x) || math.IsInf(x, 0) {
					t.Fatalf("%q: %s=%q is not finite", in, p.Name, v)
				}
			}
		}
		canon := s.String()
		again, err := ParseSpec(canon)
		if err != nil {
			t.Fatalf("%q: canonical form %q does not parse: %v", in, canon, err)
		}
		if again.Kind != s.Kind || again.Target != s.Target || !reflect.DeepEqual(again.Values, s.Values) || again.String() != canon {
			t.Fatalf("%q: canonical form %q parses to %+v, want %+v", in, canon, again, s)
		}
		if IsSelector(s.Target) {
			if sel, err := ParseSelector(s.Target, s.Kind.Target); err == nil {
				checkSelector(t, sel)
			}
		}
	})
}

var selectorTypes = []TargetType{TargetNode, TargetLink, TargetRegion, TargetRole, "other"}

// FuzzParseSelector: a selector that parses has filters the target type
// knows, each with trimmed non-empty values, and a valid mode; written out
// again it parses to the same selector; resolved against a stack it picks
// a sorted subset of the matching candidates, as many as its mode says,
// the same ones for the same seed.
func FuzzParseSelector(f *testing.F) {
	for _, s := range specSeeds(f) {
		if _, target, ok := strings.Cut(s, ":"); ok {
			target, _, _ = strings.Cut(target, ":")
			for i := range selectorTypes {
				f.Add(target, uint8(i), int64(1))
			}
		}
	}
	f.Add("role=store,region=primary,mode=one", uint8(0), int64(7))
	f.Add("from=clients,protocol=smtp|imap,mode=2", uint8(1), int64(-3))
	f.Add("region=secondary,mode=50%", uint8(2), int64(0))
	f.Add("role=mta||store", uint8(0), int64(1))
	f.Fuzz(func(t *testing.T, text string, typ uint8, seed int64) {
		tt := selectorTypes[int(typ)%len(selectorTypes)]
		sel, err := ParseSelector(text, tt)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "selector ") {
				t.Fatalf("error does not name the selector: %v", err)
			}
			return
		}
		if sel.Type != tt || sel.Text != text {
			t.Fatalf("%q: type %s, text %q", text, sel.Type, sel.Text)
		}
		checkSelector(t, sel)
		got, err := sel.Resolve(twoRegions(), seed)
		if err != nil {
			if !IsNoMatch(err) {
				t.Fatalf("%q resolves with %v", text, err)
			}
			return
		}
		again, _ := sel.Resolve(twoRegions(), seed)
		if !slices.Equal(got, again) || !slices.IsSorted(got) || len(got) == 0 {
			t.Fatalf("%q seed %d: %v then %v", text, seed, got, again)
		}
		all, _ := Selector{Text: sel.Text, Type: sel.Type, Filters: sel.Filters, Mode: Mode{Kind: "all"}}.Resolve(twoRegions(), seed)
		for _, n := range got {
			if !slices.Contains(all, n) {
				t.Fatalf("%q picked %s, which does not match", text, n)
			}
		}
		want := len(all)
		switch sel.Mode.Kind {
		case "one":
			want = 1
		case "count":
			want = min(sel.Mode.N, len(all))
		case "percent":
			want = max(1, int(math.Ceil(float64(len(all)*sel.Mode.N)/100)))
		}
		if len(got) != want {
			t.Fatalf("%q picked %d of %d, want %d", text, len(got), len(all), want)
		}
	})
}

// checkSelector holds a parsed selector to its invariants, and writes it
// out again to check that it parses to itself.
func checkSelector(t *testing.T, sel Selector) {
	t.Helper()
	if len(sel.Filters) == 0 {
		t.Fatalf("%q: no filter", sel.Text)
	}
	var parts []string
	seen := map[string]bool{}
	for _, f := range sel.Filters {
		if !slices.Contains(selectorKeys[sel.Type], f.Key) || seen[f.Key] {
			t.Fatalf("%q: key %q unknown to %s selectors or repeated", sel.Text, f.Key, sel.Type)
		}
		seen[f.Key] = true
		if len(f.Values) == 0 {
			t.Fatalf("%q: %s has no value", sel.Text, f.Key)
		}
		for _, v := range f.Values {
			if v == "" || v != strings.TrimSpace(v) || strings.ContainsAny(v, ",|") {
				t.Fatalf("%q: %s value %q", sel.Text, f.Key, v)
			}
		}
		parts = append(parts, f.Key+"="+strings.Join(f.Values, "|"))
	}
	switch m := sel.Mode; {
	case m.Kind == "all" || m.Kind == "one":
		parts = append(parts, "mode="+m.Kind)
	case m.Kind == "count" && m.N >= 1:
		parts = append(parts, "mode="+strconv.Itoa(m.N))
	case m.Kind == "percent" && m.N >= 1 && m.N <= 100:
		parts = append(parts, "mode="+strconv.Itoa(m.N)+"%")
	default:
		t.Fatalf("%q: mode %+v", sel.Text, m)
	}
	text := strings.Join(parts, ",")
	again, err := ParseSelector(text, sel.Type)
	if err != nil || !reflect.DeepEqual(again.Filters, sel.Filters) || again.Mode != sel.Mode {
		t.Fatalf("%q written out as %q parses to %+v, %v", sel.Text, text, again, err)
	}
}
