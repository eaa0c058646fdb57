package faults

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mailchaos/mailchaos/history"
)

// fakeEnv is an in-memory stack: every handle appends what it was asked to
// do to one shared call log, so tests can assert order.
type fakeEnv struct {
	mu      sync.Mutex
	calls   []string
	nodes   map[string]*fakeNode
	links   map[string]*fakeLink
	regions map[string]*fakeRegion
	edge    *fakeEdge
	noEdge  bool
}

func (e *fakeEnv) record(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, fmt.Sprintf(format, args...))
}

func (e *fakeEnv) Calls() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.calls...)
}

func (e *fakeEnv) reset() {
	e.mu.Lock()
	e.calls = nil
	e.mu.Unlock()
}

// newFakeEnv builds the reference stack's shape: edge, two regions with an
// mta and a store each, a standby, and four links.
func newFakeEnv() *fakeEnv {
	e := &fakeEnv{nodes: map[string]*fakeNode{}, links: map[string]*fakeLink{}, regions: map[string]*fakeRegion{}}
	add := func(name, region, role string) {
		e.nodes[name] = &fakeNode{env: e, name: name, region: region, role: role,
			image: "mailchaos/" + role + ":v1", upgrade: "mailchaos/" + role + ":v2", running: true}
	}
	add("edge", "", "edge")
	add("standby", "", "standby")
	for _, r := range []string{"a", "b"} {
		add("mta-"+r, r, "mta")
		add("store-"+r, r, "store")
		e.regions[r] = &fakeRegion{env: e, name: r}
	}
	for _, l := range [][3]string{{"client-smtp", "clients", "edge"}, {"edge-mta-a", "edge", "region-a"},
		{"edge-mta-b", "edge", "region-b"}, {"wan-a-b", "region-a", "region-b"}} {
		e.links[l[0]] = &fakeLink{env: e, name: l[0], from: l[1], to: l[2], enabled: true, toxics: map[string]Toxic{}}
	}
	e.edge = &fakeEdge{env: e, sessions: map[string][]int{}}
	return e
}

func (e *fakeEnv) Node(name string) (Node, error) {
	if n, ok := e.nodes[name]; ok {
		return n, nil
	}
	return nil, errors.New("no such node")
}

func (e *fakeEnv) Nodes() []Node {
	var out []Node
	for _, n := range e.nodes {
		out = append(out, n)
	}
	// Map order on purpose: the package must not depend on listing order.
	return out
}

func (e *fakeEnv) Region(name string) (Region, error) {
	if r, ok := e.regions[name]; ok {
		return r, nil
	}
	return nil, errors.New("no such region")
}

func (e *fakeEnv) Regions() []Region {
	var out []Region
	for _, r := range e.regions {
		out = append(out, r)
	}
	return out
}

func (e *fakeEnv) Link(name string) (Link, error) {
	if l, ok := e.links[name]; ok {
		return l, nil
	}
	return nil, errors.New("no such link")
}

func (e *fakeEnv) Links() []Link {
	var out []Link
	for _, l := range e.links {
		out = append(out, l)
	}
	return out
}

func (e *fakeEnv) Edge() (Edge, error) {
	if e.noEdge {
		return nil, errors.New("no edge")
	}
	return e.edge, nil
}

type fakeNode struct {
	env                  *fakeEnv
	name, region, role   string
	image, upgrade       string
	mu                   sync.Mutex
	running, paused, cut bool
	dropped, failDrop    bool
	execCode             int
	failStart            bool
	panicHeal            bool
	procDead             bool // kill-process killed it; ready again after a restart
	// noProc: pgrep finds no process. pid1: the killed process is the
	// container's main one: pkill dies with the container (exit 137) and
	// later execs fail.
	noProc, pid1 bool
	// quiesce holds successive answers of Quiesced (the last repeats);
	// nil: the node cannot tell.
	quiesce []bool
}

var _ Quiescer = (*fakeNode)(nil)

func (n *fakeNode) CanQuiesce() bool { return n.quiesce != nil }

func (n *fakeNode) Quiesced(ctx context.Context) (bool, error) {
	n.env.record("quiesced? %s", n.name)
	n.mu.Lock()
	defer n.mu.Unlock()
	ok := n.quiesce[0]
	if len(n.quiesce) > 1 {
		n.quiesce = n.quiesce[1:]
	}
	return ok, nil
}

func (n *fakeNode) Name() string         { return n.name }
func (n *fakeNode) Region() string       { return n.region }
func (n *fakeNode) Role() string         { return n.role }
func (n *fakeNode) Image() string        { return n.image }
func (n *fakeNode) UpgradeImage() string { return n.upgrade }
func (n *fakeNode) BaseImage() string    { return "mailchaos/" + n.role + ":v1" }
func (n *fakeNode) set(call string, f func()) error {
	n.env.record("%s %s", call, n.name)
	n.mu.Lock()
	defer n.mu.Unlock()
	f()
	return nil
}
func (n *fakeNode) Kill(ctx context.Context) error {
	return n.set("kill", func() { n.running = false })
}
func (n *fakeNode) Stop(ctx context.Context) error {
	return n.set("stop", func() { n.running = false })
}
func (n *fakeNode) Start(ctx context.Context) error {
	if n.failStart {
		n.env.record("start %s", n.name)
		return errors.New("start failed")
	}
	return n.set("start", func() { n.running, n.procDead = true, false })
}
func (n *fakeNode) Restart(ctx context.Context) error {
	return n.set("restart", func() { n.running, n.procDead = true, false })
}
func (n *fakeNode) Pause(ctx context.Context) error {
	return n.set("pause", func() { n.paused = true })
}
func (n *fakeNode) Unpause(ctx context.Context) error {
	n.env.record("unpause %s", n.name)
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.paused {
		return errors.New("container is not paused")
	}
	n.paused = false
	return nil
}
func (n *fakeNode) WaitReady(ctx context.Context) error {
	n.mu.Lock()
	ready := n.running && !n.paused && !n.cut && !n.procDead
	n.mu.Unlock()
	if ready {
		return nil
	}
	<-ctx.Done()
	return fmt.Errorf("%s not ready: %w", n.name, ctx.Err())
}
func (n *fakeNode) Exec(ctx context.Context, cmd []string) (int, string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.running {
		return -1, "", fmt.Errorf("exec in %s: container is not running", n.name)
	}
	switch cmd[0] {
	case "pgrep":
		if n.noProc || n.procDead {
			return 1, "", nil
		}
		return 0, "123\n", nil
	case "pkill":
		n.env.record("exec %s %s", n.name, strings.Join(cmd, " "))
		if n.pid1 {
			n.procDead, n.running = true, false
			return 137, "", nil
		}
		if n.execCode == 0 {
			n.procDead = true
		}
	default:
		n.env.record("exec %s %s", n.name, strings.Join(cmd, " "))
	}
	return n.execCode, "", nil
}

// Running tells whether the fake container runs.
func (n *fakeNode) Running(context.Context) (bool, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.running, nil
}
func (n *fakeNode) Replace(ctx context.Context, image string) error {
	return n.set("replace "+image, func() { n.running, n.image = true, image })
}
func (n *fakeNode) Disconnect(ctx context.Context) error {
	return n.set("disconnect", func() { n.cut = true })
}
func (n *fakeNode) Connect(ctx context.Context) error {
	return n.set("connect", func() { n.cut = false })
}
func (n *fakeNode) DropVolumes(ctx context.Context) error {
	if n.failDrop {
		n.env.record("drop-volumes %s", n.name)
		return errors.New("volume in use")
	}
	return n.set("drop-volumes", func() { n.dropped = true })
}

type fakeRegion struct {
	env  *fakeEnv
	name string
}

func (r *fakeRegion) Name() string { return r.name }
func (r *fakeRegion) Nodes() []Node {
	var out []Node
	for _, n := range r.env.nodes {
		if n.region == r.name {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out
}
func (r *fakeRegion) each(call string, f func(*fakeNode)) error {
	r.env.record("region-%s %s", call, r.name)
	for _, n := range r.Nodes() {
		fn := n.(*fakeNode)
		fn.mu.Lock()
		f(fn)
		fn.mu.Unlock()
	}
	return nil
}
func (r *fakeRegion) Kill(ctx context.Context) error {
	return r.each("kill", func(n *fakeNode) { n.running = false })
}
func (r *fakeRegion) Stop(ctx context.Context) error {
	return r.each("stop", func(n *fakeNode) { n.running = false })
}
func (r *fakeRegion) Start(ctx context.Context) error {
	return r.each("start", func(n *fakeNode) { n.running = true })
}
func (r *fakeRegion) Disconnect(ctx context.Context) error {
	return r.each("disconnect", func(n *fakeNode) { n.cut = true })
}
func (r *fakeRegion) Connect(ctx context.Context) error {
	return r.each("connect", func(n *fakeNode) { n.cut = false })
}

type fakeLink struct {
	env            *fakeEnv
	name, from, to string
	mu             sync.Mutex
	enabled        bool
	toxics         map[string]Toxic
	failAdd        bool
}

func (l *fakeLink) Name() string     { return l.name }
func (l *fakeLink) From() string     { return l.from }
func (l *fakeLink) To() string       { return l.to }
func (l *fakeLink) Listen() int      { return 10000 }
func (l *fakeLink) Upstream() string { return "x:1" }
func (l *fakeLink) AddToxic(ctx context.Context, t Toxic) error {
	l.env.record("add-toxic %s %s %s %v", l.name, t.Type, t.Stream, t.Toxicity)
	if l.failAdd {
		return errors.New("api down")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, dup := l.toxics[t.Name]; dup {
		return errors.New("toxic already exists")
	}
	l.toxics[t.Name] = t
	return nil
}
func (l *fakeLink) RemoveToxic(ctx context.Context, name string) error {
	l.env.record("remove-toxic %s", l.name)
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.toxics[name]; !ok {
		return errors.New("toxic not found")
	}
	delete(l.toxics, name)
	return nil
}
func (l *fakeLink) SetEnabled(ctx context.Context, on bool) error {
	l.env.record("set-enabled %s %v", l.name, on)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.enabled = on
	return nil
}

// Probe passes when the link is enabled and has no blocking toxic.
func (l *fakeLink) Probe(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.enabled {
		return errors.New("connection refused")
	}
	for _, t := range l.toxics {
		if t.Type == "timeout" && t.Toxicity == 1 {
			return errors.New("i/o timeout")
		}
	}
	return nil
}

func (l *fakeLink) clean() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.enabled && len(l.toxics) == 0
}

type fakeEdge struct {
	env      *fakeEnv
	mu       sync.Mutex
	sessions map[string][]int // successive answers of Sessions per node; the last repeats
	drained  map[string]bool
	// serving holds successive answers of Serving per node (the last
	// repeats; none: true); nil: the edge cannot tell.
	serving map[string][]bool
}

func (e *fakeEdge) CanTellServing() bool { return e.serving != nil }

func (e *fakeEdge) Serving(ctx context.Context, node string) (bool, error) {
	e.env.record("serving? %s", node)
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.serving[node]
	if len(q) == 0 {
		return true, nil
	}
	if len(q) > 1 {
		e.serving[node] = q[1:]
	}
	return q[0], nil
}

var _ ServingEdge = (*fakeEdge)(nil)

func (e *fakeEdge) Drain(ctx context.Context, node string) error {
	e.env.record("drain %s", node)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.drained == nil {
		e.drained = map[string]bool{}
	}
	e.drained[node] = true
	return nil
}
func (e *fakeEdge) Enable(ctx context.Context, node string) error {
	e.env.record("enable %s", node)
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.drained, node)
	return nil
}
func (e *fakeEdge) Sessions(ctx context.Context, node string) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.sessions[node]
	if len(q) == 0 {
		return 0, nil
	}
	n := q[0]
	if len(q) > 1 {
		e.sessions[node] = q[1:]
	}
	return n, nil
}

// fakeSink collects events.
type fakeSink struct {
	mu     sync.Mutex
	events []string
}

func (s *fakeSink) Event(kind history.Kind, name, target string, start, end time.Time, err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if end.Before(start) {
		return errors.New("end before start")
	}
	ok := "ok"
	if err != nil {
		ok = "fail"
	}
	s.events = append(s.events, fmt.Sprintf("%s %s %s %s", kind, name, target, ok))
	return nil
}

func (s *fakeSink) Events() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.events...)
}
