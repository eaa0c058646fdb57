package doctor

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mailchaos/mailchaos/faults"
	"github.com/mailchaos/mailchaos/faults/harnessenv"
	"github.com/mailchaos/mailchaos/harness"
)

// Bounds of the role checks.
const (
	execTimeout  = 15 * time.Second
	drainSeen    = 10 * time.Second // a drain must show in serving within this
	servingBack  = 30 * time.Second // the edge's health checks may take a few rounds
	cutSeen      = 5 * time.Second
	linkBaseline = 10 * time.Second
	linkBack     = 30 * time.Second
)

// quiesce runs the quiesce command of every MTA (and of any other service
// that declares one) once: it must run and answer 0 (idle) or 1 (busy).
// Anything else (126 not executable, 127 not found, a crash) would make a
// rolling upgrade wait out its whole drain timeout on every node.
func (c *checker) quiesce(ctx context.Context) {
	d := c.env.Descriptor()
	for _, n := range c.env.Nodes() {
		cmd := d.Services[n.Name()].Quiesce
		switch {
		case len(cmd) == 0 && n.Role() == "mta":
			c.warn(CheckQuiesce, n.Name(), "declare quiesce on the MTA: a command run in its container that exits 0 when its queue is empty, 1 otherwise",
				"no quiesce command: a rolling upgrade stops the MTA without waiting for its deliveries in flight, which an MTA may repeat after a restart")
			continue
		case len(cmd) == 0:
			continue
		}
		var code int
		var out string
		var err error
		bounded(ctx, execTimeout, func(ctx context.Context) { code, out, err = n.Exec(ctx, cmd) })
		out = lastLine(out)
		fix := fmt.Sprintf("make quiesce run in %s's image (%s) and exit 0 when it holds no work in flight, 1 otherwise", n.Name(), n.Image())
		switch {
		case err != nil:
			c.fail(CheckQuiesce, n.Name(), fix, "could not run %q: %v", strings.Join(cmd, " "), err)
		case code == 0:
			c.ok(CheckQuiesce, n.Name(), "exit 0: no work in flight")
		case code == 1:
			c.ok(CheckQuiesce, n.Name(), "exit 1: work in flight (a rolling upgrade waits for 0)")
		case code == 126:
			c.fail(CheckQuiesce, n.Name(), fix, "exit 126: the command is not executable%s", colon(out))
		case code == 127:
			c.fail(CheckQuiesce, n.Name(), fix, "exit 127: the command is not in the image%s", colon(out))
		default:
			c.fail(CheckQuiesce, n.Name(), fix, "exit %d, want 0 (idle) or 1 (busy)%s", code, colon(out))
		}
	}
}

func colon(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// edgeControl checks the edge's control commands on one node the edge
// sends sessions to: drain it (and, with a serving command, see the edge
// stop serving it), count its sessions, enable it and see it served again.
// A stack without an edge only gets a warning: the scenarios that need one
// skip. An edge without drain, enable or sessions fails: it is the edge a
// rolling upgrade and a standby takeover would have to go through.
func (c *checker) edgeControl(ctx context.Context) {
	edge, err := c.env.Edge()
	if err != nil {
		c.warn(CheckEdgeControl, "", "give the stack a service with role edge and control commands (drain, enable, sessions) to run them",
			"no edge control: %s", c.skippedWithout(""))
		return
	}
	en := edge.Node().Name()
	ctl := c.env.Descriptor().Services[en].Control
	if ctl == nil {
		ctl = &harness.ControlSpec{}
	}
	node := c.backend(en)
	if node == "" {
		c.fail(CheckEdgeDrain, "", "route the edge's connections to the MTAs or stores through links with from: edge",
			"no link from the edge %q reaches an mta or a store: there is no node to drain", en)
		return
	}
	missing := false
	for _, m := range []struct {
		check, cmd string
		args       []string
		does, lost string
	}{
		{CheckEdgeDrain, "drain", ctl.Drain,
			"stops new sessions to {{.Node}} and lets open ones finish (e.g. HAProxy: set server <backend>/{{.Node}} state drain)",
			"nothing can take a node out of the edge before it is stopped"},
		{CheckEdgeSessions, "sessions", ctl.Sessions,
			"prints the number of open sessions to {{.Node}}",
			"nothing can tell when a drained node's last session has ended"},
		{CheckEdgeEnable, "enable", ctl.Enable,
			"sends new sessions to {{.Node}} again (e.g. HAProxy: set server <backend>/{{.Node}} state ready)",
			"nothing can put a drained node back"},
	} {
		if len(m.args) == 0 {
			missing = true
			c.fail(m.check, "", fmt.Sprintf("declare control.%s on %s: a command run in its container that %s", m.cmd, en, m.does),
				"the edge %q declares no control.%s: %s (%s)", en, m.cmd, m.lost, c.skippedWithout(m.cmd))
		}
	}
	if !edge.CanTellServing() {
		c.warn(CheckEdgeServing, "", fmt.Sprintf("declare control.serving on %s: exit 0 when the edge sends new sessions to {{.Node}}, 1 otherwise", en),
			"no control.serving: a rolling upgrade cannot wait until the edge serves a replaced node before it drains the next one")
	}
	if missing {
		return
	}
	c.drainAndEnable(ctx, edge, node)
}

// drainAndEnable runs drain, sessions and enable on node, and, when the
// edge can tell, checks with serving that each took effect. node is
// enabled again before it returns, whatever failed.
func (c *checker) drainAndEnable(ctx context.Context, edge *harness.Edge, node string) {
	serving := edge.CanTellServing()
	if serving {
		if _, err := awaitServing(ctx, edge, node, true, servingBack); err != nil {
			c.fail(CheckEdgeServing, "", "make control.serving exit 0 while the edge sends new sessions to {{.Node}}",
				"before any drain, serving %s does not say the edge serves it within %s: %v", node, servingBack, err)
			return
		}
	}
	var err error
	bounded(ctx, execTimeout, func(ctx context.Context) { err = edge.Drain(ctx, node) })
	defer func() {
		// Whatever failed below, the node is not left drained.
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), execTimeout)
		defer cancel()
		_ = edge.Enable(bctx, node)
	}()
	const drainFix = "make control.drain stop new sessions to {{.Node}} and exit 0"
	if err != nil {
		c.fail(CheckEdgeDrain, "", drainFix, "drain %s: %v", node, err)
		return
	}
	if serving {
		took, err := awaitServing(ctx, edge, node, false, drainSeen)
		if err != nil {
			c.fail(CheckEdgeDrain, "", drainFix, "drain %s exited 0, but serving still says the edge sends it new sessions after %s: the drain has no effect (%v)", node, drainSeen, err)
			return
		}
		c.ok(CheckEdgeDrain, "", "drain %s exited 0; serving said it was out within %s", node, took)
	} else {
		c.ok(CheckEdgeDrain, "", "drain %s exited 0 (no control.serving to see its effect)", node)
	}
	var n int
	bounded(ctx, execTimeout, func(ctx context.Context) { n, err = edge.Sessions(ctx, node) })
	if err != nil {
		c.fail(CheckEdgeSessions, "", "make control.sessions print one integer: the open sessions to {{.Node}}", "sessions %s: %v", node, err)
	} else {
		c.ok(CheckEdgeSessions, "", "sessions %s printed %d", node, n)
	}
	bounded(ctx, execTimeout, func(ctx context.Context) { err = edge.Enable(ctx, node) })
	const enableFix = "make control.enable send new sessions to {{.Node}} again and exit 0"
	if err != nil {
		c.fail(CheckEdgeEnable, "", enableFix, "enable %s: %v", node, err)
		return
	}
	if !serving {
		c.ok(CheckEdgeEnable, "", "enable %s exited 0 (no control.serving to see its effect)", node)
		return
	}
	took, err := awaitServing(ctx, edge, node, true, servingBack)
	if err != nil {
		c.fail(CheckEdgeEnable, "", enableFix, "enable %s exited 0, but serving does not say the edge serves it again within %s (%v)", node, servingBack, err)
		return
	}
	c.ok(CheckEdgeEnable, "", "enable %s exited 0; serving said it was back within %s", node, took)
	c.ok(CheckEdgeServing, "", "exit 0 while %s was served, 1 while it was drained", node)
}

// awaitServing polls the edge's serving command until it says want for
// node, for at most within; an error of the command itself (an exit code
// other than 0 and 1) ends the wait at once.
func awaitServing(ctx context.Context, edge *harness.Edge, node string, want bool, within time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	start := time.Now()
	for {
		got, err := edge.Serving(ctx, node)
		if err != nil && ctx.Err() == nil {
			return 0, err
		}
		if err == nil && got == want {
			return time.Since(start).Round(time.Millisecond), nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("serving %s still exits %s", node, map[bool]string{true: "0", false: "1"}[got])
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// backend picks the node whose drain the check exercises: the first MTA
// (else store) a link from the edge reaches, in the descriptor's link order.
func (c *checker) backend(edge string) string {
	d := c.env.Descriptor()
	for _, role := range []string{"mta", "store"} {
		for _, l := range d.Links {
			from, to := d.LinkEnds(l)
			if (from.Name == edge || from.Role == "edge") && to.Role == role {
				return to.Name
			}
		}
	}
	return ""
}

// skippedWithout says which scenarios of the catalog need the edge control
// command cmd ("": any), and so will be skipped without it:
// "rolling-upgrade and standby-takeover will be skipped".
func (c *checker) skippedWithout(cmd string) string {
	var names []string
	for _, s := range c.o.Catalog {
		if (cmd == "" && len(s.Needs.EdgeControl) > 0) || (cmd != "" && slices.Contains(s.Needs.EdgeControl, cmd)) {
			names = append(names, s.Name)
		}
	}
	sort.Strings(names)
	switch len(names) {
	case 0:
		return "the scenarios that need it will be skipped"
	case 1:
		return names[0] + " will be skipped"
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1] + " will be skipped"
}

// links cuts every link in turn with the partition fault (the proxy
// disabled) and heals it, through the fault package's own observers: the
// link must pass traffic before, stop passing it while cut, and pass it
// again after the heal. A link that cannot be cut makes every fault on it
// a no-op that the verdict would take for resilience.
func (c *checker) links(ctx context.Context) {
	if len(c.env.Links()) == 0 {
		c.warn(CheckLink, "", "route the paths faults should cut (clients to edge, edge to each region, between regions) through links",
			"the stack declares no links: no network fault can be injected")
		return
	}
	fenv := harnessenv.New(c.env)
	kind, ok := faults.Lookup("partition")
	if !ok {
		c.fail(CheckLink, "", "this is a mailchaos bug: report it", "the partition fault kind is not registered")
		return
	}
	for _, l := range fenv.Links() {
		if ctx.Err() != nil {
			return
		}
		f, err := faults.Spec{Kind: kind, Target: l.Name(), Values: faults.Values{}}.Build(fenv)
		if err != nil {
			c.fail(CheckLink, l.Name(), "this is a mailchaos bug: report it", "%v", err)
			continue
		}
		c.cutAndHeal(ctx, l, f)
	}
}

// cutAndHeal checks one link with its partition fault f. The link is
// enabled again before it returns.
func (c *checker) cutAndHeal(ctx context.Context, l faults.Link, f faults.Fault) {
	inj, okInj := f.(faults.InjectObserver)
	heal, okHeal := f.(faults.HealObserver)
	if !okInj || !okHeal {
		c.fail(CheckLink, l.Name(), "this is a mailchaos bug: report it", "the partition fault cannot observe its effect")
		return
	}
	upstream := l.Upstream()
	var err error
	bounded(ctx, linkBaseline, func(ctx context.Context) { err = heal.AwaitHealed(ctx) })
	if err != nil {
		c.fail(CheckLink, l.Name(), fmt.Sprintf("make %s listen and answer (is the service up, and the port in the link's upstream right?)", upstream),
			"no traffic passes even before the cut: %v", err)
		return
	}
	defer func() {
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), execTimeout)
		defer cancel()
		_ = f.Heal(bctx)
	}()
	start := time.Now()
	bounded(ctx, execTimeout, func(ctx context.Context) { err = f.Inject(ctx) })
	if err != nil {
		c.fail(CheckLink, l.Name(), "check that the stack's Toxiproxy answers its API", "disable the link: %v", err)
		return
	}
	bounded(ctx, cutSeen, func(ctx context.Context) { err = inj.AwaitInjected(ctx) })
	cut := time.Since(start).Round(time.Millisecond)
	if err != nil {
		c.fail(CheckLink, l.Name(), "a link's published port must lead through Toxiproxy only", "disabled, but traffic still passes after %s: %v", cutSeen, err)
		return
	}
	start = time.Now()
	bounded(ctx, execTimeout, func(ctx context.Context) { err = f.Heal(ctx) })
	if err == nil {
		bounded(ctx, linkBack, func(ctx context.Context) { err = heal.AwaitHealed(ctx) })
	}
	back := time.Since(start).Round(time.Millisecond)
	if err != nil {
		c.fail(CheckLink, l.Name(), fmt.Sprintf("make %s accept new connections again once its link is restored", upstream),
			"enabled again, but traffic does not pass within %s: %v", linkBack, err)
		return
	}
	c.ok(CheckLink, l.Name(), "to %s: cut seen in %s, traffic back %s after the heal", upstream, cut, back)
}
