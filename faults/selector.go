package faults

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/mailchaos/mailchaos/harness/suggest"
)

// A Selector picks a fault's targets by what they are, never by name, so
// that one scenario runs against any team's stack: "the stores of the
// primary region", "one MTA", "the links from the edge into the primary
// region", "the links between regions". It is written where a spec names
// its target, as comma-separated filters, each key=value, where a value
// may list alternatives with '|':
//
//	stop:role=store,region=primary
//	kill:role=mta,region=primary,mode=one
//	partition:from=edge,to.region=primary
//	partition:path=cross-region
//	latency:from=clients,protocol=imap:latency=150ms
//	region-loss:region=primary
//
// A target without '=' is a name, as before. Selectors are resolved
// against a Topology when a run starts (ResolveSpec); the choice of mode
// one or a count is drawn from the run's seed, so a run can be replayed.
type Selector struct {
	// Text is the selector as written.
	Text string
	// Type is the kind of target it selects.
	Type TargetType
	// Filters must all match a candidate.
	Filters []Filter
	// Mode says how many of the matching candidates are taken.
	Mode Mode
}

// Filter is one key=value condition of a selector.
type Filter struct {
	// Key is the attribute, e.g. "role" or "to.region".
	Key string
	// Values are the alternatives; one must match.
	Values []string
}

// Mode says how many matching targets a selector takes, as Chaos Mesh's
// selector modes do.
type Mode struct {
	// Kind is "all", "one", "count" or "percent".
	Kind string
	// N is the count (Kind count) or the percentage (Kind percent).
	N int
}

// The region values a selector understands besides region names.
const (
	// RegionPrimary is the run's primary region (see PickPrimary).
	RegionPrimary = "primary"
	// RegionSecondary is every region but the primary.
	RegionSecondary = "secondary"
)

// The path values of link selectors.
const (
	// PathClient is a link the test clients connect through.
	PathClient = "client"
	// PathCrossRegion is a link between services of two different regions.
	PathCrossRegion = "cross-region"
	// PathInRegion is a link between services of one region.
	PathInRegion = "in-region"
)

// selectorKeys are the filter keys each target type understands, in the
// order the help lists them.
var selectorKeys = map[TargetType][]string{
	TargetNode:   {"role", "region", "name"},
	TargetLink:   {"from", "to", "from.region", "to.region", "region", "path", "protocol", "name"},
	TargetRegion: {"region"},
	TargetRole:   {"role"},
}

// SelectorHelp is the selector grammar in a few lines, for help output and
// error messages.
const SelectorHelp = `a target is a name, or a selector: key=value filters separated by ',' (value alternatives with '|'), and mode=all|one|N|N%
  nodes:   role=<role>, region=<region>|primary|secondary, name=<node>
  links:   from=<service|role|clients>, to=<service|role>, from.region=, to.region=, region= (either end),
           path=client|cross-region|in-region, protocol=<upstream port name, e.g. smtp, imap, lmtp>, name=<link>
  regions: region=primary|secondary|<region>
  roles:   role=<role>`

// IsSelector reports whether a target is written as a selector.
func IsSelector(target string) bool { return strings.Contains(target, "=") }

// ParseSelector parses a selector for targets of type tt; every problem is
// reported in one error.
func ParseSelector(text string, tt TargetType) (Selector, error) {
	s := Selector{Text: text, Type: tt, Mode: Mode{Kind: "all"}}
	keys := selectorKeys[tt]
	var problems []string
	seen := map[string]bool{}
	for _, part := range strings.Split(text, ",") {
		key, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch {
		case !ok || key == "":
			problems = append(problems, fmt.Sprintf("%q is not key=value", part))
			continue
		case val == "":
			problems = append(problems, fmt.Sprintf("%s: empty value", key))
			continue
		case seen[key]:
			problems = append(problems, fmt.Sprintf("%s given twice", key))
			continue
		}
		seen[key] = true
		if key == "mode" {
			m, err := parseMode(val)
			if err != nil {
				problems = append(problems, err.Error())
			}
			s.Mode = m
			continue
		}
		if !slices.Contains(keys, key) {
			problems = append(problems, fmt.Sprintf("unknown key %q for a %s selector%s; keys: %s, mode",
				key, tt, suggest.DidYouMean(key, append(slices.Clone(keys), "mode")), strings.Join(keys, ", ")))
			continue
		}
		f := Filter{Key: key}
		for _, v := range strings.Split(val, "|") {
			// "a| b" means a or b; an empty alternative ("a||b", "a|")
			// is a slip that would match nothing, so say so.
			if v = strings.TrimSpace(v); v == "" {
				problems = append(problems, fmt.Sprintf("%s: %q has an empty alternative: write value|value", key, val))
				break
			}
			f.Values = append(f.Values, v)
		}
		if key == "path" {
			for _, v := range f.Values {
				if !slices.Contains([]string{PathClient, PathCrossRegion, PathInRegion}, v) {
					problems = append(problems, fmt.Sprintf("path: %q is not one of client, cross-region, in-region%s",
						v, suggest.DidYouMean(v, []string{PathClient, PathCrossRegion, PathInRegion})))
				}
			}
		}
		s.Filters = append(s.Filters, f)
	}
	if len(s.Filters) == 0 && len(problems) == 0 {
		problems = append(problems, "no filter: give at least one key=value besides mode")
	}
	if len(problems) > 0 {
		return Selector{}, fmt.Errorf("selector %q: %s", text, strings.Join(problems, "; "))
	}
	return s, nil
}

func parseMode(v string) (Mode, error) {
	switch v {
	case "all", "one":
		return Mode{Kind: v}, nil
	}
	if p, ok := strings.CutSuffix(v, "%"); ok {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 100 {
			return Mode{}, fmt.Errorf("mode: %q is not a percentage 1%%-100%%", v)
		}
		return Mode{Kind: "percent", N: n}, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return Mode{}, fmt.Errorf("mode: %q is not all, one, a count (1, 2, ...) or a percentage (50%%)", v)
	}
	return Mode{Kind: "count", N: n}, nil
}

// NoMatchError is a selector that matched nothing in a stack: the stack
// lacks what a scenario needs, so the scenario is skipped with this as its
// reason, never failed and never passed.
type NoMatchError struct {
	// Selector is the selector that matched nothing.
	Selector string
	// Type is what it selects.
	Type TargetType
}

func (e *NoMatchError) Error() string {
	return fmt.Sprintf("no %s of the stack matches %s", e.Type, e.Selector)
}

// Resolve returns the names the selector picks in t, sorted. The seed
// draws the subset of mode one, N or N%; the same seed, selector and
// topology always give the same names. A selector that matches nothing
// returns a *NoMatchError.
func (s Selector) Resolve(t Topology, seed int64) ([]string, error) {
	var matched []string
	switch s.Type {
	case TargetNode:
		for _, n := range t.Nodes {
			if s.matches(t, func(key string) []string { return nodeAttr(n, key) }) {
				matched = append(matched, n.Name)
			}
		}
	case TargetLink:
		for _, l := range t.Links {
			if s.matches(t, func(key string) []string { return linkAttr(l, key) }) {
				matched = append(matched, l.Name)
			}
		}
	case TargetRegion:
		for _, r := range t.Regions {
			if s.matches(t, func(string) []string { return []string{r} }) {
				matched = append(matched, r)
			}
		}
	case TargetRole:
		for _, r := range t.Roles() {
			if s.matches(t, func(string) []string { return []string{r} }) {
				matched = append(matched, r)
			}
		}
	default:
		return nil, fmt.Errorf("selector %q: targets of type %s cannot be selected", s.Text, s.Type)
	}
	if len(matched) == 0 {
		return nil, &NoMatchError{Selector: s.Text, Type: s.Type}
	}
	slices.Sort(matched)
	k := len(matched)
	switch s.Mode.Kind {
	case "one":
		k = 1
	case "count":
		k = min(s.Mode.N, len(matched))
	case "percent":
		k = max(1, int(math.Ceil(float64(len(matched)*s.Mode.N)/100)))
	}
	if k < len(matched) {
		h := fnv.New64a()
		h.Write([]byte(string(s.Type) + "/" + s.Text))
		rng := rand.New(rand.NewPCG(uint64(seed), h.Sum64()))
		rng.Shuffle(len(matched), func(i, j int) { matched[i], matched[j] = matched[j], matched[i] })
		matched = matched[:k]
		slices.Sort(matched)
	}
	return matched, nil
}

// matches reports whether every filter holds, attr giving the candidate's
// values for a key (a link has several for "region": one per end).
func (s Selector) matches(t Topology, attr func(key string) []string) bool {
	for _, f := range s.Filters {
		if !s.filterHolds(t, f, attr(f.Key)) {
			return false
		}
	}
	return true
}

func (s Selector) filterHolds(t Topology, f Filter, have []string) bool {
	for _, want := range f.Values {
		for _, h := range have {
			if valueMatches(t, f.Key, want, h) {
				return true
			}
		}
	}
	return false
}

// valueMatches compares one wanted value with one attribute value; region
// keys understand primary and secondary.
func valueMatches(t Topology, key, want, have string) bool {
	if key == "region" || strings.HasSuffix(key, ".region") {
		switch want {
		case RegionPrimary:
			return have != "" && have == t.Primary
		case RegionSecondary:
			return have != "" && have != t.Primary
		}
	}
	return want == have
}

func nodeAttr(n TopoNode, key string) []string {
	switch key {
	case "role":
		return []string{n.Role}
	case "region":
		return []string{n.Region}
	case "name":
		return []string{n.Name}
	}
	return nil
}

// linkAttr gives a link's values for a key: an end matches by its service
// name or its role.
func linkAttr(l TopoLink, key string) []string {
	switch key {
	case "from":
		return []string{l.From.Name, l.From.Role}
	case "to":
		return []string{l.To.Name, l.To.Role}
	case "from.region":
		return []string{l.From.Region}
	case "to.region":
		return []string{l.To.Region}
	case "region":
		return []string{l.From.Region, l.To.Region}
	case "protocol":
		return []string{l.Protocol}
	case "name":
		return []string{l.Name}
	case "path":
		var out []string
		if l.From.Name == ClientsEnd {
			out = append(out, PathClient)
		}
		if l.From.Region != "" && l.To.Region != "" {
			if l.From.Region != l.To.Region {
				out = append(out, PathCrossRegion)
			} else {
				out = append(out, PathInRegion)
			}
		}
		return out
	}
	return nil
}

// Resolution is one fault spec of a scenario with its targets resolved.
type Resolution struct {
	// Asked is the spec as written (its target may be a selector).
	Asked string
	// Specs are the concrete specs, one per resolved target.
	Specs []Spec
}

// Targets returns the resolved targets, in order.
func (r Resolution) Targets() []string {
	out := make([]string, len(r.Specs))
	for i, s := range r.Specs {
		out[i] = s.Target
	}
	return out
}

// ResolveSpec resolves a parsed spec's target against t: a selector
// becomes one spec per target it picks (a *NoMatchError when it picks
// none); a name must exist in t. The nemesis target "*" is kept as it is.
func ResolveSpec(s Spec, t Topology, seed int64) (Resolution, error) {
	r := Resolution{Asked: s.String()}
	switch {
	case s.Target == AnyTarget:
		r.Specs = []Spec{s}
		return r, nil
	case IsSelector(s.Target):
		sel, err := ParseSelector(s.Target, s.Kind.Target)
		if err != nil {
			return r, err
		}
		names, err := sel.Resolve(t, seed)
		if err != nil {
			return r, err
		}
		for _, n := range names {
			r.Specs = append(r.Specs, s.WithTarget(n))
		}
		return r, nil
	}
	if !t.Has(s.Kind.Target, s.Target) {
		return r, fmt.Errorf("%s: the stack has no %s %q%s (%ss: %s)", s.Kind.Name, s.Kind.Target, s.Target,
			suggest.DidYouMean(s.Target, t.names(s.Kind.Target)), s.Kind.Target, strings.Join(t.names(s.Kind.Target), ", "))
	}
	r.Specs = []Spec{s}
	return r, nil
}

// IsNoMatch reports whether err is (or wraps) a selector that matched nothing.
func IsNoMatch(err error) bool {
	var nm *NoMatchError
	return errors.As(err, &nm)
}
