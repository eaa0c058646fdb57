package faults

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

func init() {
	Register(&Kind{Name: "failover", Class: "failover", Target: TargetRole,
		Summary: "switch the edge from a tier's nodes to a standby node; heal switches back and flushes the standby's held mail into the primary",
		Params: []Param{
			{Name: "standby", Type: String, Optional: true, Help: "the standby node (default: the only node with role standby)"},
			{Name: "drain_timeout", Type: Duration, Default: "30s", Help: "bounded wait, on heal, for the standby's sessions to end before the flush"},
			{Name: "hold", Type: String, Default: "mailchaos-hold",
				Help: "program run in the standby before the switch: makes it hold the mail it accepts (none = the standby needs no preparing)"},
			{Name: "flush", Type: String, Default: "mailchaos-flush",
				Help: "program run in the standby on heal: releases held mail to the primary, exits 0 once its queue is empty"},
		},
		New: newFailover})
}

func newFailover(env Env, role string, p Values) (Fault, error) {
	e, err := env.Edge()
	if err != nil {
		return nil, fmt.Errorf("failover needs the edge: %w", err)
	}
	f := &Failover{role: role, edge: e, drainTimeout: p.Duration("drain_timeout"), flush: p.String("flush")}
	if h := p.String("hold"); h != "none" {
		f.hold = h
	}
	var standbys []string
	for _, n := range env.Nodes() {
		switch {
		case n.Role() == role:
			f.primaries = append(f.primaries, n)
		case n.Role() == "standby":
			standbys = append(standbys, n.Name())
		}
	}
	sort.Slice(f.primaries, func(i, j int) bool { return f.primaries[i].Name() < f.primaries[j].Name() })
	if len(f.primaries) == 0 {
		return nil, fmt.Errorf("no node has role %q", role)
	}
	name := p.String("standby")
	if name == "" {
		if len(standbys) != 1 {
			return nil, fmt.Errorf("need exactly one node with role standby (found %d: %s) or standby=<node>", len(standbys), strings.Join(standbys, ", "))
		}
		name = standbys[0]
	}
	if f.standby, err = env.Node(name); err != nil {
		return nil, nodeNotFound(env, name, err)
	}
	return f, nil
}

// Failover switches the edge's backends of a tier to a standby node: the
// standby is told to hold what it accepts, enabled at the edge, then every
// primary is drained. Heal enables the primaries, drains the standby, and
// runs the flush program in it so the mail it held reaches the primary's
// mailboxes.
type Failover struct {
	role         string
	edge         Edge
	primaries    []Node
	standby      Node
	drainTimeout time.Duration
	hold         string // "" = none
	flush        string
}

var (
	_ HealObserver = (*Failover)(nil)
	_ Footprinter  = (*Failover)(nil)
)

// Name returns "failover".
func (f *Failover) Name() string { return "failover" }

// Target returns the primary tier's role.
func (f *Failover) Target() string { return f.role }

// Footprint names the tier's nodes and the standby.
func (f *Failover) Footprint() []string {
	out := []string{f.role, f.standby.Name()}
	for _, n := range f.primaries {
		out = append(out, n.Name())
	}
	return out
}

// Inject makes the standby hold, enables it at the edge first, so that the
// edge always has a backend, then drains the primaries. It does not wait
// for the primaries' open sessions: they stay healthy and finish their
// mail normally, while every new session already goes to the standby.
func (f *Failover) Inject(ctx context.Context) error {
	if f.hold != "" {
		if err := f.run(ctx, f.hold); err != nil {
			return fmt.Errorf("make the standby hold its mail: %w", err)
		}
	}
	if err := f.edge.Enable(ctx, f.standby.Name()); err != nil {
		return fmt.Errorf("enable standby %s at the edge: %w", f.standby.Name(), err)
	}
	for _, n := range f.primaries {
		if err := f.edge.Drain(ctx, n.Name()); err != nil {
			return fmt.Errorf("drain %s at the edge: %w", n.Name(), err)
		}
	}
	return nil
}

// run runs program in the standby; a non-zero exit is an error carrying
// the program's output.
func (f *Failover) run(ctx context.Context, program string) error {
	code, out, err := f.standby.Exec(ctx, []string{program})
	switch {
	case err != nil:
		return fmt.Errorf("standby %s: %s: %w", f.standby.Name(), program, err)
	case code != 0:
		return fmt.Errorf("standby %s: %s exited %d: %s", f.standby.Name(), program, code, strings.TrimSpace(out))
	}
	return nil
}

// Heal switches back and flushes the standby.
func (f *Failover) Heal(ctx context.Context) error {
	var errs []error
	for _, n := range f.primaries {
		if err := f.edge.Enable(ctx, n.Name()); err != nil {
			errs = append(errs, fmt.Errorf("enable %s at the edge: %w", n.Name(), err))
		}
	}
	if err := f.edge.Drain(ctx, f.standby.Name()); err != nil {
		errs = append(errs, fmt.Errorf("drain standby %s at the edge: %w", f.standby.Name(), err))
	}
	waitSessions(ctx, f.edge, f.standby.Name(), f.drainTimeout)
	if err := f.run(ctx, f.flush); err != nil {
		errs = append(errs, fmt.Errorf("flush the standby's held mail: %w", err))
	}
	return errors.Join(errs...)
}

// AwaitHealed verifies the primaries are ready.
func (f *Failover) AwaitHealed(ctx context.Context) error {
	return waitReady(ctx, f.primaries...)
}
