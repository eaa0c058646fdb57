package faults

import (
	"slices"
	"strings"
	"testing"
)

// twoRegions is a stack unlike any fixture: an edge, per region an MTA and
// a store, a replication link each way and one cross-region delivery link.
func twoRegions() Topology {
	t := Topology{
		Primary: "east",
		Regions: []string{"east", "west"},
		Nodes: []TopoNode{
			{"lb", "edge", ""},
			{"mx-e", "mta", "east"}, {"mx-w", "mta", "west"},
			{"box-e", "store", "east"}, {"box-w", "store", "west"},
			{"hold", "standby", ""},
		},
	}
	link := func(name, from, to, proto string) TopoLink {
		end := func(n string) LinkEnd {
			if n == ClientsEnd {
				return LinkEnd{Name: n}
			}
			node, _ := t.node(n)
			return LinkEnd{Name: n, Role: node.Role, Region: node.Region}
		}
		return TopoLink{Name: name, From: end(from), To: end(to), Protocol: proto}
	}
	t.Links = []TopoLink{
		link("c-smtp", ClientsEnd, "lb", "smtp"),
		link("c-sub", ClientsEnd, "lb", "submission"),
		link("c-imap", ClientsEnd, "lb", "imap"),
		link("lb-mx-e", "lb", "mx-e", "smtp"),
		link("lb-box-e", "lb", "box-e", "imap"),
		link("lb-mx-w", "lb", "mx-w", "smtp"),
		link("lb-box-w", "lb", "box-w", "imap"),
		link("repl-ew", "box-e", "box-w", "sync"),
		link("repl-we", "box-w", "box-e", "sync"),
		link("deliver-we", "mx-w", "box-e", "lmtp"),
		link("deliver-ee", "mx-e", "box-e", "lmtp"),
	}
	return t
}

func TestSelectorResolve(t *testing.T) {
	topo := twoRegions()
	for _, c := range []struct {
		tt   TargetType
		sel  string
		want string
	}{
		{TargetNode, "role=store,region=primary", "box-e"},
		{TargetNode, "role=store", "box-e box-w"},
		{TargetNode, "role=mta|standby", "hold mx-e mx-w"},
		{TargetNode, "region=secondary", "box-w mx-w"},
		{TargetLink, "from=edge,to.region=primary", "lb-box-e lb-mx-e"},
		{TargetLink, "from=lb,to=store", "lb-box-e lb-box-w"},
		{TargetLink, "path=cross-region", "deliver-we repl-ew repl-we"},
		{TargetLink, "path=in-region", "deliver-ee"},
		{TargetLink, "path=client,protocol=imap", "c-imap"},
		{TargetLink, "from=clients,protocol=smtp|submission", "c-smtp c-sub"},
		{TargetLink, "from=mta,to=store", "deliver-ee deliver-we"},
		{TargetLink, "from=store,to=store,from.region=primary", "repl-ew"},
		{TargetLink, "region=secondary", "deliver-we lb-box-w lb-mx-w repl-ew repl-we"},
		{TargetRegion, "region=primary", "east"},
		{TargetRegion, "region=secondary", "west"},
		{TargetRole, "role=mta", "mta"},
	} {
		s, err := ParseSelector(c.sel, c.tt)
		if err != nil {
			t.Fatalf("%s: %v", c.sel, err)
		}
		got, err := s.Resolve(topo, 1)
		if err != nil {
			t.Errorf("%s %s: %v", c.tt, c.sel, err)
			continue
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("%s %s = %v, want %s", c.tt, c.sel, got, c.want)
		}
	}
}

func TestSelectorModesAreSeeded(t *testing.T) {
	topo := twoRegions()
	one, _ := ParseSelector("role=mta|store,mode=one", TargetNode)
	seen := map[string]bool{}
	for seed := int64(0); seed < 40; seed++ {
		a, err := one.Resolve(topo, seed)
		if err != nil || len(a) != 1 {
			t.Fatalf("mode=one seed %d: %v %v", seed, a, err)
		}
		b, _ := one.Resolve(topo, seed)
		if !slices.Equal(a, b) {
			t.Fatalf("seed %d picked %v then %v", seed, a, b)
		}
		seen[a[0]] = true
	}
	if len(seen) < 3 {
		t.Errorf("40 seeds picked only %v of 4 nodes: the seed does not drive the choice", seen)
	}
	for sel, n := range map[string]int{"role=mta|store,mode=3": 3, "role=mta|store,mode=50%": 2, "role=mta|store,mode=1%": 1, "role=mta,mode=9": 2} {
		s, err := ParseSelector(sel, TargetNode)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Resolve(topo, 7)
		if err != nil || len(got) != n {
			t.Errorf("%s: %v %v, want %d targets", sel, got, err, n)
		}
	}
}

func TestSelectorNoMatchIsASkipReason(t *testing.T) {
	one := twoRegions()
	one.Regions, one.Primary = []string{"east"}, "east"
	for _, c := range []struct {
		tt  TargetType
		sel string
	}{
		{TargetRegion, "region=secondary"},
		{TargetNode, "role=x-ldap"},
		{TargetLink, "from=edge,to=standby"},
	} {
		s, err := ParseSelector(c.sel, c.tt)
		if err != nil {
			t.Fatal(err)
		}
		topo := twoRegions()
		if c.tt == TargetRegion {
			topo = one
		}
		_, err = s.Resolve(topo, 1)
		if !IsNoMatch(err) || !strings.Contains(err.Error(), c.sel) {
			t.Errorf("%s: err %v, want a no-match error naming the selector", c.sel, err)
		}
	}
}

func TestParseSelectorReportsEveryProblem(t *testing.T) {
	_, err := ParseSelector("rol=store,region=,mode=twice,path=wan", TargetNode)
	if err == nil {
		t.Fatal("a broken selector parsed")
	}
	for _, want := range []string{`unknown key "rol" for a node selector (did you mean "role"?)`, "region: empty value", `mode: "twice"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if _, err := ParseSelector("path=wan", TargetLink); err == nil || !strings.Contains(err.Error(), "path") {
		t.Errorf("unknown path accepted: %v", err)
	}
	if _, err := ParseSelector("mode=one", TargetNode); err == nil {
		t.Error("a selector with only a mode parsed")
	}
	for _, sel := range []string{"role=mta||store", "role=mta|", "role=|"} {
		if _, err := ParseSelector(sel, TargetNode); err == nil || !strings.Contains(err.Error(), "has an empty alternative: write value|value") {
			t.Errorf("%s: err = %v", sel, err)
		}
	}
	if s, err := ParseSelector("role= mta | store ", TargetNode); err != nil || !slices.Equal(s.Filters[0].Values, []string{"mta", "store"}) {
		t.Errorf("spaces around alternatives: %+v, %v", s, err)
	}
}

func TestResolveSpec(t *testing.T) {
	topo := twoRegions()
	r, err := ResolveSpec(MustParseSpec("partition:from=edge,to.region=primary"), topo, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.Targets(), " "); got != "lb-box-e lb-mx-e" {
		t.Errorf("targets %s", got)
	}
	for _, s := range r.Specs {
		if IsSelector(s.Target) || s.Kind.Name != "partition" {
			t.Errorf("resolved spec %s", s)
		}
	}
	// A name is checked against the stack, with a suggestion.
	if _, err := ResolveSpec(MustParseSpec("kill:mx-ee"), topo, 1); err == nil || !strings.Contains(err.Error(), `did you mean "mx-e"`) {
		t.Errorf("unknown node: %v", err)
	}
	if r, err := ResolveSpec(MustParseSpec("kill:mx-e"), topo, 1); err != nil || r.Targets()[0] != "mx-e" {
		t.Errorf("name: %v %v", r, err)
	}
	if _, err := ResolveSpec(MustParseSpec("latency:from=clients,protocol=pop3:latency=1s"), topo, 1); !IsNoMatch(err) {
		t.Errorf("no pop3 link: %v", err)
	}
}

func TestPickPrimary(t *testing.T) {
	if r, from := PickPrimary([]string{"b", "a"}, "b", 1); r != "b" || from != "descriptor" {
		t.Errorf("declared: %s %s", r, from)
	}
	if r, _ := PickPrimary(nil, "", 1); r != "" {
		t.Errorf("no regions: %q", r)
	}
	seen := map[string]bool{}
	for seed := int64(0); seed < 20; seed++ {
		r, from := PickPrimary([]string{"west", "east", "north"}, "", seed)
		r2, _ := PickPrimary([]string{"north", "east", "west"}, "", seed)
		if r != r2 || from != "seed" {
			t.Fatalf("seed %d: %s vs %s (%s)", seed, r, r2, from)
		}
		seen[r] = true
	}
	if len(seen) < 2 {
		t.Errorf("20 seeds always picked %v", seen)
	}
}
