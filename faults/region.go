package faults

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
)

func init() {
	Register(&Kind{Name: "region-loss", Class: "region", Target: TargetRegion,
		Summary: "a region goes dark: its links are cut, its nodes disconnected and killed (or stopped); heal restores them with their volumes",
		Params: []Param{{Name: "mode", Type: String, Default: "kill", Enum: []string{"kill", "stop"},
			Help: "kill = SIGKILL, stop = graceful"}},
		New: func(env Env, target string, p Values) (Fault, error) {
			return newRegionFault(env, target, "region-loss", p.String("mode"), false)
		}})
	Register(&Kind{Name: "region-destroy", Class: "region", Target: TargetRegion,
		Summary: "a region is destroyed: like region-loss, and its volumes are deleted; heal brings it back empty (measure the recovery point)",
		New: func(env Env, target string, _ Values) (Fault, error) {
			return newRegionFault(env, target, "region-destroy", "kill", true)
		}})
}

func newRegionFault(env Env, name, kind, mode string, destroy bool) (Fault, error) {
	r, err := env.Region(name)
	if err != nil {
		var names []string
		for _, r := range env.Regions() {
			names = append(names, r.Name())
		}
		sort.Strings(names)
		return nil, fmt.Errorf("region %q: %w; regions: %s", name, err, strings.Join(names, ", "))
	}
	f := &RegionFault{kind: kind, region: r, mode: mode, destroy: destroy}
	for _, l := range env.Links() {
		if regionEnd(l.From(), name) || regionEnd(l.To(), name) {
			f.links = append(f.links, l)
		}
	}
	if destroy {
		for _, n := range r.Nodes() {
			if _, ok := n.(VolumeDropper); !ok {
				return nil, fmt.Errorf("region-destroy needs to delete node %s's volumes: DropVolumes %w", n.Name(), errNoCapability)
			}
		}
	}
	return f, nil
}

// regionEnd reports whether a link end label names region r ("a" or "region-a").
func regionEnd(label, r string) bool { return label == r || label == "region-"+r }

// RegionFault takes a whole region down and cut off: its Toxiproxy links
// are disabled, its nodes killed (or stopped) and disconnected from their
// networks. Heal reconnects and starts them, and enables the links. With
// destroy, volumes are deleted while the nodes are down, so they come back
// empty.
type RegionFault struct {
	kind    string
	region  Region
	mode    string
	destroy bool
	links   []Link
}

var (
	_ HealObserver = (*RegionFault)(nil)
	_ Footprinter  = (*RegionFault)(nil)
)

// Name returns the fault kind.
func (f *RegionFault) Name() string { return f.kind }

// Target returns the region name.
func (f *RegionFault) Target() string { return f.region.Name() }

// Footprint names the region, its nodes and its links.
func (f *RegionFault) Footprint() []string {
	out := []string{f.region.Name()}
	for _, n := range f.region.Nodes() {
		out = append(out, n.Name())
	}
	for _, l := range f.links {
		out = append(out, l.Name())
	}
	return out
}

// Inject cuts the region's links, then takes every node down: killed (or
// stopped), disconnected from its networks and, for a destruction, its
// volumes deleted. Links go first, all at once, because they are the
// region's only way to the rest of the stack (its networks hold only its
// own nodes and Toxiproxy): from then on nothing half-dead in the region
// reaches anything outside. Nodes are handled concurrently, each in that
// order (a stopped container leaves its networks faster than a live one),
// so the inject takes as long as the slowest node, not their sum. Every
// failure is reported, each naming its link or node.
func (f *RegionFault) Inject(ctx context.Context) error {
	if err := concurrently(f.links, func(l Link) error {
		if err := l.SetEnabled(ctx, false); err != nil {
			return fmt.Errorf("disable link %s: %w", l.Name(), err)
		}
		return nil
	}); err != nil {
		return err
	}
	return concurrently(f.region.Nodes(), func(n Node) error {
		down := n.Kill
		if f.mode == "stop" {
			down = n.Stop
		}
		if err := down(ctx); err != nil {
			return fmt.Errorf("%s %s: %w", f.mode, n.Name(), err)
		}
		if err := n.Disconnect(ctx); err != nil {
			return fmt.Errorf("disconnect %s: %w", n.Name(), err)
		}
		if f.destroy {
			if err := n.(VolumeDropper).DropVolumes(ctx); err != nil {
				return fmt.Errorf("drop volumes of %s: %w", n.Name(), err)
			}
		}
		return nil
	})
}

// Heal reconnects the region, starts its nodes (in dependency order, ready
// on return) and enables its links. Every step is tried even if one fails.
func (f *RegionFault) Heal(ctx context.Context) error {
	var errs []error
	if err := f.region.Connect(ctx); err != nil && !isAlready(err) {
		errs = append(errs, fmt.Errorf("connect region %s: %w", f.region.Name(), err))
	}
	if err := f.region.Start(ctx); err != nil {
		errs = append(errs, fmt.Errorf("start region %s: %w", f.region.Name(), err))
	}
	errs = append(errs, concurrently(f.links, func(l Link) error {
		if err := l.SetEnabled(ctx, true); err != nil {
			return fmt.Errorf("enable link %s: %w", l.Name(), err)
		}
		return nil
	}))
	return errors.Join(errs...)
}

// AwaitHealed verifies every node is ready and every link passes traffic.
func (f *RegionFault) AwaitHealed(ctx context.Context) error {
	if err := waitReady(ctx, f.region.Nodes()...); err != nil {
		return err
	}
	return concurrently(f.links, func(l Link) error { return awaitLinkPasses(ctx, l) })
}

func init() {
	Register(&Kind{Name: "disconnect-region", Class: "partition", Target: TargetRegion,
		Summary: "hard partition: disconnect every node of a region from its Docker networks (nodes keep running); heal reconnects",
		New: func(env Env, target string, _ Values) (Fault, error) {
			r, err := env.Region(target)
			if err != nil {
				return nil, fmt.Errorf("region %q: %w", target, err)
			}
			return &RegionPartition{region: r}, nil
		}})
}

// RegionPartition disconnects a region's nodes from their networks while
// they keep running: a hard partition of the whole region.
type RegionPartition struct {
	region Region
}

var (
	_ HealObserver = (*RegionPartition)(nil)
	_ Footprinter  = (*RegionPartition)(nil)
)

// Name returns "disconnect-region".
func (f *RegionPartition) Name() string { return "disconnect-region" }

// Target returns the region name.
func (f *RegionPartition) Target() string { return f.region.Name() }

// Footprint names the region and its nodes.
func (f *RegionPartition) Footprint() []string {
	out := []string{f.region.Name()}
	for _, n := range f.region.Nodes() {
		out = append(out, n.Name())
	}
	return out
}

// Inject disconnects the region.
func (f *RegionPartition) Inject(ctx context.Context) error { return f.region.Disconnect(ctx) }

// Heal reconnects the region.
func (f *RegionPartition) Heal(ctx context.Context) error {
	if err := f.region.Connect(ctx); err != nil && !isAlready(err) {
		return err
	}
	return nil
}

// AwaitHealed verifies every node of the region is ready.
func (f *RegionPartition) AwaitHealed(ctx context.Context) error {
	return waitReady(ctx, f.region.Nodes()...)
}
