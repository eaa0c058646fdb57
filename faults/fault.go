package faults

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Fault is one injectable failure with its parameters and its target.
// Inject breaks something; Heal undoes it and must be safe to call even if
// Inject failed half way or was never called, and more than once.
type Fault interface {
	// Name is the fault's kind, e.g. "latency" or "region-loss".
	Name() string
	// Target is what the fault hits: a link, node, region or role name.
	Target() string
	Inject(ctx context.Context) error
	Heal(ctx context.Context) error
}

// InjectObserver is a Fault that can wait until its injected effect is
// observable (a link stops passing traffic). The timeline records the
// inject event's end when it returns.
type InjectObserver interface {
	AwaitInjected(ctx context.Context) error
}

// HealObserver is a Fault that can verify its heal (the link passes traffic
// again, the node answers its readiness probe). The timeline records the
// heal event's end when it returns, and a failure as the event's error.
type HealObserver interface {
	AwaitHealed(ctx context.Context) error
}

// Stacker is a Fault that stacks with other faults on the same target: a
// Toxiproxy toxic or a disabled proxy composes with another toxic on the
// link. The timeline lets such faults overlap; any other fault waits until
// no earlier fault holds part of its footprint, so that two faults never
// stop, replace or disconnect the same node at once.
type Stacker interface {
	Stacks() bool
}

// Footprinter is a Fault that hits more than its target: it names every
// node, link or region it touches, so the nemesis does not stack two
// faults on the same thing.
type Footprinter interface {
	Footprint() []string
}

// TargetType says what a kind's target names.
type TargetType string

// The target types.
const (
	TargetLink   TargetType = "link"
	TargetNode   TargetType = "node"
	TargetRegion TargetType = "region"
	TargetRole   TargetType = "role" // a tier: every node with that role
)

// ParamType is the type of a kind's parameter.
type ParamType int

// The parameter types.
const (
	String ParamType = iota
	Duration
	Int
	Float
	Bool
)

func (t ParamType) String() string {
	switch t {
	case Duration:
		return "duration"
	case Int:
		return "integer"
	case Float:
		return "number"
	case Bool:
		return "bool"
	}
	return "string"
}

// MaxParamDuration bounds every duration parameter of a spec: a drain
// timeout of years is a wait without a deadline.
const MaxParamDuration = 24 * time.Hour

// Param declares one parameter of a kind.
type Param struct {
	Name    string
	Type    ParamType
	Default string   // used when the spec omits the parameter; "" = required unless Optional
	Enum    []string // allowed values of a String parameter
	Min     float64  // lower bound of numeric parameters (durations in seconds), inclusive
	Max     float64  // upper bound when > Min
	// Optional marks a parameter with no default that may be left out.
	Optional bool
	Help     string
}

// Kind describes a fault kind: its parameters and how to build it.
type Kind struct {
	// Name is what a spec starts with, e.g. "latency".
	Name string
	// Class groups kinds for reports: network, partition, node, region, upgrade, failover, protocol.
	Class string
	// Summary is one line for help output.
	Summary string
	// Target says what the target names.
	Target TargetType
	// Params are the parameters after the target, in positional order.
	Params []Param
	// New builds the fault for env; p holds validated values (defaults filled in).
	New func(env Env, target string, p Values) (Fault, error)
}

// Usage returns the spec syntax of the kind, e.g. "latency:<link>[:latency][:jitter=..]".
func (k *Kind) Usage() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:<%s>", k.Name, k.Target)
	for _, p := range k.Params {
		switch {
		case p.Default != "":
			fmt.Fprintf(&b, "[:%s=%s]", p.Name, p.Default)
		case p.Optional:
			fmt.Fprintf(&b, "[:%s=<%s>]", p.Name, p.Type)
		default:
			fmt.Fprintf(&b, ":<%s>", p.Name)
		}
	}
	return b.String()
}

var (
	registryMu sync.RWMutex
	registry   = map[string]*Kind{}
)

// Register adds a kind to the registry; it panics on a duplicate name, as a
// programming error.
func Register(k *Kind) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[k.Name]; dup {
		panic("faults: kind registered twice: " + k.Name)
	}
	registry[k.Name] = k
}

// Lookup returns the kind registered under name.
func Lookup(name string) (*Kind, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	k, ok := registry[name]
	return k, ok
}

// Kinds returns every registered kind, sorted by name.
func Kinds() []*Kind {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]*Kind, 0, len(registry))
	for _, k := range registry {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// KindNames returns the registered kind names, sorted.
func KindNames() []string {
	var names []string
	for _, k := range Kinds() {
		names = append(names, k.Name)
	}
	return names
}

// Values are a spec's validated parameter values by name, defaults filled in.
type Values map[string]string

// String returns a parameter's value.
func (v Values) String(name string) string { return v[name] }

// Duration returns a duration parameter (validated when parsing).
func (v Values) Duration(name string) time.Duration {
	d, _ := time.ParseDuration(v[name])
	return d
}

// Int returns an integer parameter.
func (v Values) Int(name string) int64 {
	n, _ := strconv.ParseInt(v[name], 10, 64)
	return n
}

// Float returns a number parameter.
func (v Values) Float(name string) float64 {
	f, _ := strconv.ParseFloat(v[name], 64)
	return f
}

// Bool returns a bool parameter.
func (v Values) Bool(name string) bool {
	b, _ := strconv.ParseBool(v[name])
	return b
}

// Has reports whether a parameter has a value.
func (v Values) Has(name string) bool { return v[name] != "" }

// Spec is a parsed fault spec: a kind, a target ("*" lets the nemesis
// pick) and validated parameter values.
type Spec struct {
	Kind   *Kind
	Target string
	Values Values
}

// AnyTarget is the target of a spec whose target the nemesis picks.
const AnyTarget = "*"

// String formats the spec back in the flag syntax with every parameter
// named, so it parses to the same spec.
func (s Spec) String() string {
	var b strings.Builder
	b.WriteString(s.Kind.Name)
	b.WriteString(":")
	b.WriteString(s.Target)
	for _, p := range s.Kind.Params {
		if v, ok := s.Values[p.Name]; ok && v != "" {
			fmt.Fprintf(&b, ":%s=%s", p.Name, v)
		}
	}
	return b.String()
}

// WithTarget returns a copy of the spec aimed at target.
func (s Spec) WithTarget(target string) Spec {
	s.Target = target
	return s
}

// Build resolves the spec's target in env and returns the fault.
func (s Spec) Build(env Env) (Fault, error) {
	if s.Target == AnyTarget {
		return nil, fmt.Errorf("build %s: target %q must be chosen first (the nemesis does)", s.Kind.Name, AnyTarget)
	}
	f, err := s.Kind.New(env, s.Target, s.Values)
	if err != nil {
		return nil, fmt.Errorf("build %s:%s: %w", s.Kind.Name, s.Target, err)
	}
	return f, nil
}

// ParseSpec parses a spec "kind:target[:param...]". Parameters are
// positional in the kind's order or named as name=value; every problem is
// reported in one error, with the kind's usage.
func ParseSpec(spec string) (Spec, error) {
	parts := strings.Split(strings.TrimSpace(spec), ":")
	kind, ok := Lookup(parts[0])
	if !ok {
		return Spec{}, fmt.Errorf("fault %q: unknown kind %q; known kinds: %s", spec, parts[0], strings.Join(KindNames(), ", "))
	}
	if len(parts) < 2 || parts[1] == "" {
		return Spec{}, fmt.Errorf("fault %q: missing target (a %s name); usage: %s", spec, kind.Target, kind.Usage())
	}
	s := Spec{Kind: kind, Target: parts[1], Values: Values{}}
	var problems []string
	pos := 0
	named := false
	for _, arg := range parts[2:] {
		var p *Param
		val := arg
		if name, v, ok := strings.Cut(arg, "="); ok {
			named = true
			p = kind.param(name)
			if p == nil {
				problems = append(problems, fmt.Sprintf("unknown parameter %q", name))
				continue
			}
			val = v
		} else {
			if named {
				problems = append(problems, fmt.Sprintf("positional value %q after a named parameter", arg))
				continue
			}
			if pos >= len(kind.Params) {
				problems = append(problems, fmt.Sprintf("too many parameters (%q)", arg))
				continue
			}
			p = &kind.Params[pos]
			pos++
		}
		if _, dup := s.Values[p.Name]; dup {
			problems = append(problems, fmt.Sprintf("parameter %s given twice", p.Name))
			continue
		}
		if err := p.check(val); err != nil {
			problems = append(problems, err.Error())
			continue
		}
		s.Values[p.Name] = val
	}
	for _, p := range kind.Params {
		if _, ok := s.Values[p.Name]; ok {
			continue
		}
		switch {
		case p.Default != "":
			s.Values[p.Name] = p.Default
		case !p.Optional:
			problems = append(problems, fmt.Sprintf("missing parameter %s (%s)", p.Name, p.Help))
		}
	}
	if len(problems) > 0 {
		return Spec{}, fmt.Errorf("fault %q: %s; usage: %s", spec, strings.Join(problems, "; "), kind.Usage())
	}
	return s, nil
}

// MustParseSpec is ParseSpec for specs known to be valid (tests, defaults);
// it panics on error.
func MustParseSpec(spec string) Spec {
	s, err := ParseSpec(spec)
	if err != nil {
		panic(err)
	}
	return s
}

// Parse parses a spec and builds it against env.
func Parse(env Env, spec string) (Fault, error) {
	s, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	return s.Build(env)
}

func (k *Kind) param(name string) *Param {
	for i := range k.Params {
		if k.Params[i].Name == name {
			return &k.Params[i]
		}
	}
	return nil
}

func (p *Param) check(val string) error {
	var num float64
	switch p.Type {
	case Duration:
		d, err := time.ParseDuration(val)
		if err != nil {
			return fmt.Errorf("%s: %q is not a duration (e.g. 200ms, 2s)", p.Name, val)
		}
		if d > MaxParamDuration {
			return fmt.Errorf("%s: %s is longer than %s: a fault's waits and effects end within a run", p.Name, val, MaxParamDuration)
		}
		num = d.Seconds()
	case Int:
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return fmt.Errorf("%s: %q is not an integer", p.Name, val)
		}
		num = float64(n)
	case Float:
		f, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return fmt.Errorf("%s: %q is not a number", p.Name, val)
		}
		// ParseFloat takes "NaN" and "Inf", which pass every bound
		// check below (NaN compares false) and mean nothing to a toxic.
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("%s: %q is not a finite number: write a decimal, e.g. 0.5", p.Name, val)
		}
		num = f
	case Bool:
		if _, err := strconv.ParseBool(val); err != nil {
			return fmt.Errorf("%s: %q is not true or false", p.Name, val)
		}
		return nil
	default:
		if len(p.Enum) > 0 {
			for _, e := range p.Enum {
				if val == e {
					return nil
				}
			}
			return fmt.Errorf("%s: %q is not one of %s", p.Name, val, strings.Join(p.Enum, ", "))
		}
		if val == "" {
			return fmt.Errorf("%s: empty value", p.Name)
		}
		return nil
	}
	if num < p.Min {
		return fmt.Errorf("%s: %s is below the minimum %v", p.Name, val, p.Min)
	}
	if p.Max > p.Min && num > p.Max {
		return fmt.Errorf("%s: %s is above the maximum %v", p.Name, val, p.Max)
	}
	return nil
}

// Help lists every kind with its syntax and summary, one block per kind,
// for a CLI's "--fault help".
func Help() string {
	var b strings.Builder
	for _, k := range Kinds() {
		fmt.Fprintf(&b, "%s  (%s)\n    %s\n", k.Usage(), k.Class, k.Summary)
		for _, p := range k.Params {
			fmt.Fprintf(&b, "    %s: %s, %s\n", p.Name, p.Type, p.Help)
		}
	}
	return b.String()
}
