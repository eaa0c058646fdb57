package flow

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/mailchaos/mailchaos/faults"
	"github.com/mailchaos/mailchaos/faults/harnessenv"
	"github.com/mailchaos/mailchaos/harness"
)

// Needs is what a scenario needs of a stack for its faults to mean
// anything. A fault selector that matches nothing says the same on its
// own (no link between regions: nothing to partition); Needs states what
// selectors cannot, such as "losing the primary region leaves another one
// to serve".
type Needs struct {
	// Regions is the least number of regions.
	Regions int
	// Roles must each have at least one service.
	Roles []string
	// Upgrade lists roles every service of which needs an upgrade_image.
	Upgrade []string
	// EdgeControl lists the edge control commands the scenario uses
	// (drain, enable, sessions, serving).
	EdgeControl []string
}

// Missing returns, one line each, what d lacks of n (nil: nothing).
func (n Needs) Missing(d *harness.Descriptor) []string {
	var out []string
	if got := len(d.Regions()); got < n.Regions {
		out = append(out, fmt.Sprintf("needs %d regions, the stack has %d", n.Regions, got))
	}
	roles := map[string][]*harness.ServiceSpec{}
	var edge *harness.ServiceSpec
	for _, name := range d.ServiceNames() {
		s := d.Services[name]
		roles[s.Role] = append(roles[s.Role], s)
		if s.Role == "edge" {
			edge = s
		}
	}
	for _, r := range n.Roles {
		if len(roles[r]) == 0 {
			out = append(out, fmt.Sprintf("needs a service with role %s", r))
		}
	}
	for _, r := range n.Upgrade {
		var without []string
		for _, s := range roles[r] {
			if s.UpgradeImage == "" {
				without = append(without, s.Name)
			}
		}
		switch {
		case len(roles[r]) == 0:
			out = append(out, fmt.Sprintf("needs services with role %s to upgrade", r))
		case len(without) > 0:
			out = append(out, fmt.Sprintf("needs an upgrade_image on every %s (missing on %s)", r, strings.Join(without, ", ")))
		}
	}
	if len(n.EdgeControl) > 0 {
		var lack []string
		for _, c := range n.EdgeControl {
			if edge == nil || len(edgeCommand(edge.Control, c)) == 0 {
				lack = append(lack, c)
			}
		}
		switch {
		case edge == nil:
			out = append(out, fmt.Sprintf("needs an edge with control commands (%s)", strings.Join(n.EdgeControl, ", ")))
		case len(lack) > 0:
			out = append(out, fmt.Sprintf("needs edge control %s", strings.Join(lack, ", ")))
		}
	}
	return out
}

// EdgeControls are the control commands an edge may declare.
var EdgeControls = []string{"drain", "enable", "sessions", "serving"}

func edgeCommand(c *harness.ControlSpec, name string) []string {
	if c == nil {
		return nil
	}
	switch name {
	case "drain":
		return c.Drain
	case "enable":
		return c.Enable
	case "sessions":
		return c.Sessions
	case "serving":
		return c.Serving
	}
	return nil
}

// Plan is a scenario resolved against a stack before anything starts: the
// descriptor (rehearsal image sets applied), the topology with its primary
// region, and every fault spec with the targets its selectors picked. A
// stack that cannot serve the scenario gives a Plan whose Skip says why.
type Plan struct {
	// Descriptor is the stack, ready for harness.Up.
	Descriptor *harness.Descriptor
	// Topology is the stack as selectors see it, primary region chosen.
	Topology faults.Topology
	// Faults are the scenario's faults with their targets resolved, in
	// timeline order; empty when Skip is set.
	Faults []PlannedFault
	// Skip lists why the stack cannot serve the scenario (nil: it can).
	Skip []string
	// Omitted lists the optional faults left out, each with the reason.
	Omitted []string
	// Menu is the nemesis's menu, parsed, the items that match nothing in
	// the stack left out (noted in Omitted); nil without a nemesis.
	Menu []faults.Spec
	// Scheduled lists what the nemesis planned, once the load phase
	// started (it builds faults against the running stack).
	Scheduled []string
}

// PlannedFault is one fault of a scenario's timeline, resolved.
type PlannedFault struct {
	FaultAt
	// Resolution holds one concrete spec per target the selector picked.
	Resolution faults.Resolution
}

// SkipReason is the plan's skip reasons on one line ("" when it runs).
func (p *Plan) SkipReason() string { return strings.Join(p.Skip, "; ") }

// NewPlan resolves s against the stack p names, with p's seed and image
// sets. A broken descriptor, a spec that does not parse or a name the
// stack does not have is an error (the scenario or the stack is wrong,
// and nothing starts); a need the stack does not meet or a selector that
// matches nothing is a Skip.
func NewPlan(p Params, s Scenario) (*Plan, error) {
	path, err := p.StackPath()
	if err != nil {
		return nil, err
	}
	d, err := harness.Load(path)
	if err != nil {
		return nil, err
	}
	if err := ApplyImageSets(d, p.From, p.To); err != nil {
		return nil, err
	}
	plan := &Plan{Descriptor: d, Topology: harnessenv.Topology(d, p.Seed), Skip: s.Needs.Missing(d)}
	var errs []error
	for _, f := range s.Faults {
		spec, err := faults.ParseSpec(f.Spec)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		res, err := faults.ResolveSpec(spec, plan.Topology, p.Seed)
		switch {
		case faults.IsNoMatch(err) && f.Optional:
			plan.Omitted = append(plan.Omitted, fmt.Sprintf("%s left out: %v", f.Spec, err))
		case faults.IsNoMatch(err):
			if reason := err.Error(); !slices.Contains(plan.Skip, reason) {
				plan.Skip = append(plan.Skip, reason)
			}
		case err != nil:
			errs = append(errs, err)
		default:
			plan.Faults = append(plan.Faults, PlannedFault{FaultAt: f, Resolution: res})
		}
	}
	if n := s.Nemesis; n != nil {
		for _, m := range n.Menu {
			spec, err := faults.ParseSpec(m)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			switch _, err := faults.ResolveSpec(spec, plan.Topology, p.Seed); {
			case faults.IsNoMatch(err):
				plan.Omitted = append(plan.Omitted, fmt.Sprintf("nemesis menu item %s left out: %v", m, err))
			case err != nil:
				errs = append(errs, err)
			default:
				plan.Menu = append(plan.Menu, spec)
			}
		}
		if len(plan.Menu) == 0 && len(errs) == 0 {
			plan.Skip = append(plan.Skip, "no item of the nemesis menu matches anything in the stack")
		}
	}
	for _, f := range plan.Faults {
		d := s.LoadDuration(p.Duration)
		if at, hold := f.Offsets(d); at+hold > d {
			errs = append(errs, fmt.Errorf("fault %s ends at %s, after the load phase (%s): raise --duration or the scenario's min_duration", f.Spec, at+hold, d))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("scenario %s against stack %s: %w", s.Name, d.Name, err)
	}
	if len(plan.Skip) > 0 {
		plan.Faults = nil
	}
	return plan, nil
}

// Describe lists what the plan resolved, one line per fault: the spec as
// written and the targets it picked, for the log, the history and the
// report.
func (p *Plan) Describe() []string {
	lines := []string{"primary region: " + orNone(p.Topology.Primary) + byWhat(p.Topology.PrimaryFrom)}
	for _, f := range p.Faults {
		lines = append(lines, fmt.Sprintf("%s -> %s", f.Spec, strings.Join(f.Resolution.Targets(), ", ")))
	}
	for _, m := range p.Menu {
		lines = append(lines, "nemesis menu: "+m.String())
	}
	lines = append(lines, p.Scheduled...)
	return append(lines, p.Omitted...)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func byWhat(from string) string {
	if from == "" {
		return ""
	}
	return " (chosen by the " + from + ")"
}
