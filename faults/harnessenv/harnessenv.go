// Package harnessenv adapts a running *harness.Env to the small interfaces
// of package faults, which does not import the harness. Go has no
// covariant return types, so *harness.Env (whose Node returns
// *harness.Node) cannot satisfy faults.Env directly; the wrappers here are
// thin. Nodes keep the harness's capabilities (DropVolumes for region
// destruction) and add their declared image (BaseImage, for rollbacks);
// every link, published on the host by the harness, gets a traffic probe,
// so a fault's effect and heal on it are observed, not assumed: the
// upstream's first line where it speaks first, reachability where it
// waits for its client.
package harnessenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/mailchaos/mailchaos/faults"
	"github.com/mailchaos/mailchaos/harness"
)

// New returns e as a faults.Env. It connects once through every link
// (concurrently, for at most LearnTimeout) to learn which upstreams speak
// first, which decides how each link is probed (see probedLink): call it
// on a stack that is up and not faulted.
func New(e *harness.Env) faults.Env {
	v := &env{e: e, silent: map[string]bool{}}
	v.learn()
	return v
}

// LearnTimeout bounds how long New waits for an upstream's first line
// before it takes the upstream for one that waits for its client.
var LearnTimeout = 2 * time.Second

type env struct {
	e *harness.Env
	// silent names the links whose upstream accepted a connection and
	// said nothing within LearnTimeout.
	silent map[string]bool
}

// learn fills silent. A link that cannot be reached or closes at once
// counts as speaking first: the stricter probe.
func (v *env) learn() {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, l := range v.e.Links() {
		addr, err := l.Addr()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), LearnTimeout)
			defer cancel()
			if firstLine(ctx, addr) == errSilent {
				mu.Lock()
				v.silent[l.Name()] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

var _ faults.Env = (*env)(nil)

func (v *env) Node(name string) (faults.Node, error) {
	n, err := v.e.Node(name)
	if err != nil {
		return nil, err
	}
	return v.node(n), nil
}

func (v *env) Nodes() []faults.Node {
	var out []faults.Node
	for _, n := range v.e.Nodes() {
		out = append(out, v.node(n))
	}
	return out
}

// node adds the declared image, so a rollback knows where to return.
type node struct {
	*harness.Node
	base string
}

var (
	_ faults.BaseImager    = node{}
	_ faults.VolumeDropper = node{}
	_ faults.RunChecker    = node{}
)

// BaseImage returns the image the descriptor declares for the node.
func (n node) BaseImage() string { return n.base }

func (v *env) node(n *harness.Node) faults.Node {
	base := ""
	if s, ok := v.e.Descriptor().Services[n.Name()]; ok {
		base = s.Image
	}
	return node{Node: n, base: base}
}

func (v *env) Region(name string) (faults.Region, error) {
	r, err := v.e.Region(name)
	if err != nil {
		return nil, err
	}
	return region{r, v}, nil
}

func (v *env) Regions() []faults.Region {
	var out []faults.Region
	for _, r := range v.e.Regions() {
		out = append(out, region{r, v})
	}
	return out
}

func (v *env) Link(name string) (faults.Link, error) {
	l, err := v.e.Link(name)
	if err != nil {
		return nil, err
	}
	return v.link(l), nil
}

func (v *env) Links() []faults.Link {
	var out []faults.Link
	for _, l := range v.e.Links() {
		out = append(out, v.link(l))
	}
	return out
}

func (v *env) Edge() (faults.Edge, error) {
	e, err := v.e.Edge()
	if err != nil {
		return nil, err
	}
	return e, nil
}

// link wraps l with a probe through its published port.
func (v *env) link(l *harness.Link) faults.Link {
	base := &link{l: l}
	if addr, err := l.Addr(); err == nil {
		return &probedLink{link: base, addr: addr, silent: v.silent[l.Name()]}
	}
	return base // the stack is not up: nothing to probe
}

// region adapts Nodes' element type.
type region struct {
	*harness.Region
	v *env
}

func (r region) Nodes() []faults.Node {
	var out []faults.Node
	for _, n := range r.Region.Nodes() {
		out = append(out, r.v.node(n))
	}
	return out
}

// link converts faults.Toxic to harness.Toxic.
type link struct{ l *harness.Link }

func (k *link) Name() string     { return k.l.Name() }
func (k *link) From() string     { return k.l.From() }
func (k *link) To() string       { return k.l.To() }
func (k *link) Listen() int      { return k.l.Listen() }
func (k *link) Upstream() string { return k.l.Upstream() }
func (k *link) AddToxic(ctx context.Context, t faults.Toxic) error {
	return k.l.AddToxic(ctx, harness.Toxic{Name: t.Name, Type: t.Type, Stream: t.Stream, Toxicity: t.Toxicity, Attributes: t.Attributes})
}
func (k *link) RemoveToxic(ctx context.Context, name string) error { return k.l.RemoveToxic(ctx, name) }
func (k *link) SetEnabled(ctx context.Context, on bool) error      { return k.l.SetEnabled(ctx, on) }

// probedLink is a link published on the host at addr.
type probedLink struct {
	*link
	addr string
	// silent: the upstream waits for its client (Dovecot's doveadm server,
	// behind the WAN links, does), so no first line can be expected.
	silent bool
}

var _ faults.Prober = (*probedLink)(nil)

// SilentHold is how long a probe of a link with a silent upstream keeps
// the connection open: Toxiproxy closes a client's connection as soon as
// it fails to reach the upstream (and refuses it while the link is
// disabled), so one still open after SilentHold has reached it.
var SilentHold = 150 * time.Millisecond

// Probe checks once that traffic passes through the link, within ctx's
// deadline (at most 2 s). Where the upstream speaks first it connects and
// reads the upstream's first line; a refused or reset connection, a close,
// or no line in time means traffic does not pass. Where the upstream is
// silent, only reachability can be seen: the connection must be accepted
// and stay open for SilentHold (a ctx shorter than that cannot tell, and
// fails). A black hole (a timeout toxic) on a silent link is therefore not
// observable; a cut link and an unreachable upstream are.
func (p *probedLink) Probe(ctx context.Context) error {
	if !p.silent {
		if err := firstLine(ctx, p.addr); err != nil {
			return fmt.Errorf("probe %s: %w", p.Name(), err)
		}
		return nil
	}
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return fmt.Errorf("probe %s: %w", p.Name(), err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < SilentHold {
		return fmt.Errorf("probe %s: connected, but the upstream is silent and %v is too short to see the connection held open %v", p.Name(), time.Until(dl).Round(time.Millisecond), SilentHold)
	}
	_ = c.SetReadDeadline(time.Now().Add(SilentHold))
	if _, err := c.Read(make([]byte, 1)); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return nil // held open: the upstream was reached
		}
		return fmt.Errorf("probe %s: connection closed (upstream unreachable?): %w", p.Name(), err)
	}
	return nil // it spoke after all
}

// errSilent says a connection was accepted and nothing was said before the
// deadline.
var errSilent = errors.New("no first line before the deadline (the upstream may wait for its client)")

// firstLine connects to addr and reads one non-empty line, within ctx's
// deadline (at most 2 s).
func firstLine(ctx context.Context, addr string) error {
	dl := time.Now().Add(2 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	d := net.Dialer{Deadline: dl}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(dl)
	line, err := bufio.NewReader(io.LimitReader(c, 4096)).ReadString('\n')
	if err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() && line == "" {
			return errSilent
		}
		return fmt.Errorf("no first line: %w", err)
	}
	if strings.TrimSpace(line) == "" {
		return errors.New("empty first line")
	}
	return nil
}

// Topology describes d as fault selectors see it, with the primary region
// the descriptor declares or, when it declares none, the one seed picks.
// It needs no running stack: scenarios resolve their targets with it
// before anything starts.
func Topology(d *harness.Descriptor, seed int64) faults.Topology {
	t := faults.Topology{Regions: d.Regions()}
	t.Primary, t.PrimaryFrom = faults.PickPrimary(t.Regions, d.PrimaryRegion, seed)
	for _, name := range d.ServiceNames() {
		s := d.Services[name]
		t.Nodes = append(t.Nodes, faults.TopoNode{Name: name, Role: s.Role, Region: s.Region})
	}
	for _, l := range d.Links {
		from, to := d.LinkEnds(l)
		t.Links = append(t.Links, faults.TopoLink{
			Name:     l.Name,
			From:     faults.LinkEnd(from),
			To:       faults.LinkEnd(to),
			Protocol: d.LinkProtocol(l),
		})
	}
	return t
}
