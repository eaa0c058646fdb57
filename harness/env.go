package harness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2/client"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// Options tune Up.
type Options struct {
	// RunID names the run's resources; default NewRunID().
	RunID string
	// OutDir receives logs/<service>.log at Teardown; default out/<run id>.
	OutDir string
	// Users overrides the descriptor's user count when > 0.
	Users int
	// Logger receives progress; default slog.Default().
	Logger *slog.Logger
	// ReadyTimeout overrides every service's ready.timeout when > 0.
	ReadyTimeout time.Duration
	// Group is the id of the larger run the stack belongs to (a mailchaos
	// run of several scenarios, one stack each), put on every resource as
	// LabelGroup so that Clean can remove every stack of it by that id.
	Group string
}

// Env is a running stack: its nodes, regions, links and endpoints. All
// methods are safe for concurrent use.
type Env struct {
	d      *Descriptor
	opts   Options
	runID  string
	log    *slog.Logger
	cli    *client.Client
	users  []User
	tls    TLSMaterial
	nodes  map[string]*Node
	links  map[string]*Link
	tp     *toxiproxy.Client
	proxy  *Node // the toxiproxy container (not a service of the descriptor)
	netIDs map[string]string
	redact *redactor // the run's secrets, taken out of every log the harness saves or quotes

	logsMu  sync.Mutex
	retired map[string]int // logs saved of a service's removed containers
	logErrs []error        // logs that could not be saved before their container went

	cancelUp context.CancelFunc // cancels an Up still in progress
	upDone   chan struct{}      // closed when Up returns

	tdOnce sync.Once
	tdErr  error
}

// Defaults used when the descriptor leaves them out.
const (
	DefaultReadyTimeout = 60 * time.Second
	DefaultStopTimeout  = 10 * time.Second
	toxiproxyAPIPort    = 8474
	logTailLines        = 30
)

// ProxyAPIHost is the host name Toxiproxy's API listens on (its -host
// flag). It is the toxiproxy container's alias on the control network
// alone, so it resolves to that network's address only: the API answers
// there and on the host port published for it (Docker forwards published
// ports to the container's gateway network, which the control network is),
// never on the networks the services share with Toxiproxy. A service that
// could reach the API could heal its own faults.
const ProxyAPIHost = "mailchaos-toxiproxy-api"

// controlNetwork is the short name of the network only the toxiproxy
// container joins. Docker gives a container on several networks its
// default gateway, and with it its published ports, through the network
// with the highest gateway priority, ties going to the name that sorts
// first: the leading '-' (Docker name mc-<run>--control) sorts before every
// stack network, whose names start with a letter or digit, on engines
// older than API 1.48 that know no priority.
const controlNetwork = "-control"

// Up brings the stack up: networks, volumes, the Toxiproxy container and its
// links, then every service in depends_on order (independent services in
// parallel), each waited on until ready. It returns the Env even on error so
// that the caller's Teardown removes whatever was created:
//
//	env, err := harness.Up(ctx, d, harness.Options{})
//	defer env.Teardown(context.Background()) // nil-safe, idempotent, runs on panic too
//	if err != nil { return err }
//
// A missing image or an unreachable Docker engine fail before anything is
// created, with a one-line cause and fix.
func Up(ctx context.Context, d *Descriptor, opts Options) (*Env, error) {
	if d == nil {
		return nil, errors.New("up: nil descriptor")
	}
	if opts.RunID == "" {
		opts.RunID = NewRunID()
	}
	if opts.OutDir == "" {
		opts.OutDir = filepath.Join("out", opts.RunID)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	e := &Env{d: d, opts: opts, runID: opts.RunID, log: opts.Logger.With("run", opts.RunID),
		nodes: map[string]*Node{}, links: map[string]*Link{}, netIDs: map[string]string{}, upDone: make(chan struct{})}
	defer close(e.upDone)
	ctx, e.cancelUp = context.WithCancel(ctx)
	defer e.cancelUp()

	cli, err := connectDocker(ctx)
	if err != nil {
		return nil, err
	}
	e.cli = cli
	// Nothing may be created under a run id that has resources: they
	// would share names, and this Env's Teardown would remove the other's.
	if err := refuseRunInUse(ctx, cli, opts.RunID); err != nil {
		_ = cli.Close()
		return nil, err
	}
	images := []string{d.Proxy.Image}
	for _, n := range d.ServiceNames() {
		images = append(images, d.Services[n].Image)
	}
	if len(d.Links) == 0 {
		images = images[1:]
	}
	if err := checkImages(ctx, cli, images); err != nil {
		_ = cli.Close()
		return nil, err
	}
	// From here on resources exist: register for signal-driven teardown.
	register(e)
	if err := e.up(ctx); err != nil {
		return e, err
	}
	return e, nil
}

func (e *Env) up(ctx context.Context) error {
	start := time.Now()
	d := e.d
	count := -1
	if e.opts.Users > 0 {
		count = e.opts.Users
	}
	e.users = GenerateUsers(d.Users, count)
	tlsm, err := GenerateTLS(e.runID, certNames(d))
	if err != nil {
		return err
	}
	e.tls = tlsm
	secret := NewPassword()
	e.redact = newRedactor(e.users, secret)
	data := TemplateData{RunID: e.runID, Domain: d.Users.Domain, Users: e.users, TLS: tlsm, Links: linkInfos(d), Secret: secret}

	// Nodes with their host ports and files, before touching Docker.
	names := d.ServiceNames()
	nports := 0
	for _, n := range names {
		nports += len(d.Services[n].Ports)
	}
	// Every link's listen port is published on loopback, not only the
	// endpoints': faults probe a link to observe a cut and verify a heal.
	var linkListens []int
	for _, l := range d.Links {
		if !containsInt(linkListens, l.Listen) {
			linkListens = append(linkListens, l.Listen)
		}
	}
	hostPorts, err := freePorts(nports + 1 + len(linkListens))
	if err != nil {
		return err
	}
	for _, n := range names {
		s := d.Services[n]
		data.Service = n
		files, err := renderFiles(d, s, data)
		if err != nil {
			return err
		}
		node := &Node{env: e, spec: s, image: s.Image, files: files, ports: map[string]int{}, hostPorts: map[string]int{}}
		for _, pn := range sortedKeys(s.Ports) {
			node.ports[pn] = s.Ports[pn]
			node.hostPorts[pn] = hostPorts[0]
			hostPorts = hostPorts[1:]
		}
		e.nodes[n] = node
	}
	for _, l := range d.Links {
		e.links[l.Name] = &Link{env: e, spec: l}
	}

	// Networks and volumes, in parallel.
	var mu sync.Mutex
	nets := d.Networks()
	if len(d.Links) > 0 {
		nets = append(nets, controlNetwork)
	}
	if err := parallel(ctx, nets, func(ctx context.Context, nw string) error {
		name := e.resName(nw)
		res, err := e.cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: "bridge", Labels: e.labels(nil)})
		if err != nil {
			return fmt.Errorf("create network %s: %w", name, err)
		}
		mu.Lock()
		e.netIDs[nw] = res.ID
		mu.Unlock()
		return nil
	}); err != nil {
		return err
	}
	var vols []string
	for _, n := range names {
		for _, vn := range sortedKeys(d.Services[n].Volumes) {
			vols = append(vols, n+"\x00"+vn)
		}
	}
	if err := parallel(ctx, vols, func(ctx context.Context, v string) error {
		svc, vn, _ := strings.Cut(v, "\x00")
		return e.createVolume(ctx, svc, vn)
	}); err != nil {
		return err
	}
	e.log.Debug("networks and volumes created", "took", time.Since(start).Round(time.Millisecond))

	// Toxiproxy (with its proxies) and the service containers are created
	// concurrently; services start only once Toxiproxy runs, because some
	// software resolves "toxiproxy" when it starts.
	if len(d.Links) > 0 {
		cmd := d.Proxy.Command
		if len(cmd) == 0 {
			cmd = []string{"-host", ProxyAPIHost, "-port", strconv.Itoa(toxiproxyAPIPort)}
		}
		px := &Node{env: e, image: d.Proxy.Image, proxy: true, ports: map[string]int{"api": toxiproxyAPIPort}, hostPorts: map[string]int{"api": hostPorts[0]},
			spec: &ServiceSpec{Name: "toxiproxy", Role: "x-toxiproxy", Command: cmd, Networks: d.Networks()}}
		for i, l := range linkListens {
			pn := linkPort(l)
			px.ports[pn] = l
			px.hostPorts[pn] = hostPorts[1+i]
		}
		e.proxy = px
		e.tp = toxiproxy.NewClient("127.0.0.1:" + strconv.Itoa(px.hostPorts["api"]))
	}
	jobs := append([]string{"\x00toxiproxy"}, names...)
	if err := parallel(ctx, jobs, func(ctx context.Context, n string) error {
		if n != "\x00toxiproxy" {
			return e.nodes[n].create(ctx, e.nodes[n].image)
		}
		if e.proxy == nil {
			return nil
		}
		return e.startProxy(ctx)
	}); err != nil {
		return err
	}
	e.log.Debug("containers created", "took", time.Since(start).Round(time.Millisecond))
	if err := e.startInOrder(ctx, names); err != nil {
		return err
	}
	e.log.Info("stack up", "stack", d.Name, "services", len(names), "links", len(d.Links), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// startInOrder starts the named nodes, each once its dependencies among
// them are ready, in parallel otherwise, and waits for readiness.
func (e *Env) startInOrder(ctx context.Context, names []string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := map[string]chan struct{}{}
	for _, n := range names {
		ready[n] = make(chan struct{})
	}
	errs := make(chan error, len(names))
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, dep := range e.d.Services[n].DependsOn {
				ch, ok := ready[dep]
				if !ok {
					continue // not part of this start (e.g. another region), assumed up
				}
				select {
				case <-ch:
				case <-ctx.Done():
					return
				}
			}
			if err := e.nodes[n].Start(ctx); err != nil {
				errs <- err
				cancel()
				return
			}
			close(ready[n])
		}()
	}
	wg.Wait()
	close(errs)
	var first error
	for err := range errs {
		if first == nil || errors.Is(first, context.Canceled) {
			first = err
		}
	}
	if first == nil {
		return ctx.Err()
	}
	return first
}

// startProxy creates and starts the Toxiproxy container and creates every link.
func (e *Env) startProxy(ctx context.Context) error {
	px := e.proxy
	if err := px.create(ctx, px.image); err != nil {
		return err
	}
	if err := px.start(ctx); err != nil {
		return err
	}
	if err := e.waitProxyAPI(ctx); err != nil {
		return err
	}
	var proxies []toxiproxy.Proxy
	for _, l := range e.d.Links {
		proxies = append(proxies, toxiproxy.Proxy{Name: l.Name, Listen: "0.0.0.0:" + strconv.Itoa(l.Listen), Upstream: e.upstreamAddr(l), Enabled: true})
	}
	if err := callCtx(ctx, func() error { _, err := e.tp.Populate(proxies); return err }); err != nil {
		return fmt.Errorf("create toxiproxy links: %w", err)
	}
	e.log.Debug("toxiproxy up", "links", len(proxies))
	return nil
}

func (e *Env) waitProxyAPI(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	url := "http://127.0.0.1:" + strconv.Itoa(e.proxy.hostPorts["api"]) + "/version"
	hc := &http.Client{Timeout: 2 * time.Second}
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := hc.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("HTTP %s", resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("start toxiproxy: API not answering on %s within 30s (%v)\n%s", url, last, e.redact.logTail(ctx, e.cli, e.proxy.id, logTailLines))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// upstreamAddr is the link's upstream as host:port with the port resolved to a number.
func (e *Env) upstreamAddr(l LinkSpec) string {
	svc, port, _ := splitUpstream(l.Upstream)
	n, err := upstreamPort(e.d.Services[svc], port)
	if err != nil {
		return l.Upstream
	}
	return svc + ":" + strconv.Itoa(n)
}

// labels are the labels of every resource of the run (run, group, owner)
// plus extra.
func (e *Env) labels(extra map[string]string) map[string]string {
	l := Self().labels()
	l[LabelRun] = e.runID
	if e.opts.Group != "" {
		l[LabelGroup] = e.opts.Group
	}
	for k, v := range extra {
		l[k] = v
	}
	return l
}

// resName is the Docker name of a run resource: mc-<run>-<suffix>.
func (e *Env) resName(suffix string) string { return "mc-" + e.runID + "-" + suffix }

// RunID returns the run id.
func (e *Env) RunID() string { return e.runID }

// Descriptor returns the descriptor the stack was brought up from.
func (e *Env) Descriptor() *Descriptor { return e.d }

// OutDir returns the folder logs are saved into.
func (e *Env) OutDir() string { return e.opts.OutDir }

// Users returns the generated test users.
func (e *Env) Users() []User { return append([]User(nil), e.users...) }

// CACertPEM returns the run's CA certificate (PEM); clients trust it for STARTTLS.
func (e *Env) CACertPEM() []byte { return []byte(e.tls.CACertPEM) }

// TLS returns the run's certificate material.
func (e *Env) TLS() TLSMaterial { return e.tls }

// Endpoint returns "127.0.0.1:port" of a client-facing endpoint (smtp, submission, imap).
func (e *Env) Endpoint(name string) (string, error) {
	ln, ok := e.d.Endpoints[name]
	if !ok {
		return "", fmt.Errorf("endpoint %q: not in the descriptor (endpoints: %v)", name, sortedKeys(e.d.Endpoints))
	}
	l, ok := e.links[ln]
	if !ok || e.proxy == nil {
		return "", fmt.Errorf("endpoint %q: the stack is not up", name)
	}
	return l.Addr()
}

// Replicas returns "127.0.0.1:port" of each mailbox replica's IMAP
// service, by replica name (empty when the descriptor declares none).
func (e *Env) Replicas() (map[string]string, error) {
	out := make(map[string]string, len(e.d.Replicas))
	for name, ln := range e.d.Replicas {
		l, ok := e.links[ln]
		if !ok || e.proxy == nil {
			return nil, fmt.Errorf("replica %q: the stack is not up", name)
		}
		addr, err := l.Addr()
		if err != nil {
			return nil, fmt.Errorf("replica %q: %w", name, err)
		}
		out[name] = addr
	}
	return out, nil
}

// ProxyAPI returns the host address of Toxiproxy's HTTP API.
func (e *Env) ProxyAPI() (string, error) {
	if e.proxy == nil {
		return "", errors.New("toxiproxy: the stack has no links")
	}
	return e.proxy.Addr("api")
}

// Node returns the named service's handle.
func (e *Env) Node(name string) (*Node, error) {
	if n, ok := e.nodes[name]; ok {
		return n, nil
	}
	return nil, fmt.Errorf("node %q: no such service%s", name, didYouMean(name, sortedKeys(e.nodes)))
}

// Nodes returns every service's handle in start order.
func (e *Env) Nodes() []*Node {
	var out []*Node
	for _, n := range e.d.ServiceNames() {
		if node, ok := e.nodes[n]; ok {
			out = append(out, node)
		}
	}
	return out
}

// Region returns the named region's handle.
func (e *Env) Region(name string) (*Region, error) {
	for _, r := range e.d.Regions() {
		if r == name {
			return &Region{env: e, name: name}, nil
		}
	}
	return nil, fmt.Errorf("region %q: no service is in it (regions: %v)", name, e.d.Regions())
}

// Regions returns every region's handle, sorted by name.
func (e *Env) Regions() []*Region {
	var out []*Region
	for _, r := range e.d.Regions() {
		out = append(out, &Region{env: e, name: r})
	}
	return out
}

// Link returns the named link's handle.
func (e *Env) Link(name string) (*Link, error) {
	if l, ok := e.links[name]; ok {
		return l, nil
	}
	return nil, fmt.Errorf("link %q: not in the descriptor%s", name, didYouMean(name, sortedKeys(e.links)))
}

// Links returns every link's handle in descriptor order.
func (e *Env) Links() []*Link {
	var out []*Link
	for _, l := range e.d.Links {
		out = append(out, e.links[l.Name])
	}
	return out
}

// HealLinks removes every toxic and re-enables every link.
func (e *Env) HealLinks(ctx context.Context) error {
	if e.tp == nil {
		return nil
	}
	return callCtx(ctx, e.tp.ResetState)
}

// Edge returns the handle of the service with role edge.
func (e *Env) Edge() (*Edge, error) {
	for _, n := range e.Nodes() {
		if n.spec.Role == "edge" {
			return &Edge{node: n}, nil
		}
	}
	return nil, errors.New("edge: no service has role edge in this descriptor")
}

// Teardown saves every container's log to <OutDir>/logs/<service>.log
// (redacted: no password of the run's users, nor its Secret), then removes
// every container, network and volume labelled with this run. Logs of
// containers removed earlier (Replace, DropVolumes) are already there as
// <service>.<n>.log; one that could not be saved makes Teardown's error. It is
// idempotent, nil-safe, and works with an already cancelled ctx (it uses
// its own 2-minute bound). It also runs on SIGINT/SIGTERM.
func (e *Env) Teardown(ctx context.Context) error {
	if e == nil {
		return nil
	}
	e.tdOnce.Do(func() {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		// An Up still creating things (a signal during Up) is stopped first,
		// so nothing is created after the removal below.
		if e.cancelUp != nil {
			e.cancelUp()
			select {
			case <-e.upDone:
			case <-time.After(30 * time.Second):
			}
		}
		cli := e.cli
		if cli == nil {
			var err error
			if cli, err = connectDocker(ctx); err != nil {
				e.tdErr = err
				return
			}
		}
		logErr := e.redact.saveLogs(ctx, cli, e.runID, filepath.Join(e.opts.OutDir, "logs"))
		me := Self()
		removed, err := removeRun(ctx, cli, e.runID, &me)
		e.logsMu.Lock()
		e.tdErr = errors.Join(append([]error{err, logErr}, e.logErrs...)...)
		e.logsMu.Unlock()
		unregister(e)
		_ = cli.Close()
		e.log.Info("stack down", "removed", removed.String(), "logs", filepath.Join(e.opts.OutDir, "logs"), "took", time.Since(start).Round(time.Millisecond))
	})
	return e.tdErr
}

// saveLogs writes each of the run's containers' logs to dir/<service>.log, redacted.
func (r *redactor) saveLogs(ctx context.Context, cli *client.Client, runID, dir string) error {
	list, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", LabelRun+"="+runID)})
	if err != nil {
		return fmt.Errorf("save logs: %w", err)
	}
	if len(list.Items) == 0 {
		return nil
	}
	errs := make([]error, len(list.Items))
	var wg sync.WaitGroup
	for i, c := range list.Items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			svc := c.Labels[LabelService]
			if svc == "" {
				svc = c.ID[:12]
			}
			if err := r.saveLog(ctx, cli, c.ID, filepath.Join(dir, svc+".log")); err != nil {
				errs[i] = fmt.Errorf("save log of %s: %w", svc, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Removed counts what a teardown or clean removed.
type Removed struct {
	// Containers, Networks and Volumes are the counts removed.
	Containers, Networks, Volumes int
}

// add adds o's counts to r.
func (r *Removed) add(o Removed) {
	r.Containers += o.Containers
	r.Networks += o.Networks
	r.Volumes += o.Volumes
}

// String formats the counts for logs.
func (r Removed) String() string {
	return fmt.Sprintf("%d containers, %d networks, %d volumes", r.Containers, r.Networks, r.Volumes)
}

// removeRun removes the containers, then networks, then volumes labelled
// with runID; with owner, only those owner made (Teardown: a racing Up of
// the same run id by another process cannot lose its resources to ours).
func removeRun(ctx context.Context, cli *client.Client, runID string, owner *Owner) (Removed, error) {
	var r Removed
	if runID == "" {
		return r, errors.New("remove run: no run id")
	}
	f := make(client.Filters).Add("label", LabelRun+"="+runID)
	if owner != nil {
		for k, v := range owner.labels() {
			if k != LabelOwnerStart { // may be "", which a filter cannot say
				f = f.Add("label", k+"="+v)
			}
		}
	}
	var errs []error
	list, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return r, fmt.Errorf("list containers: %w", err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range list.Items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
			mu.Lock()
			defer mu.Unlock()
			if err != nil && !isNotFound(err) {
				errs = append(errs, fmt.Errorf("remove container %s: %w", containerName(c), err))
				return
			}
			r.Containers++
		}()
	}
	wg.Wait()
	nets, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		errs = append(errs, fmt.Errorf("list networks: %w", err))
	}
	for _, n := range nets.Items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := cli.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{})
			mu.Lock()
			defer mu.Unlock()
			if err != nil && !isNotFound(err) {
				errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
				return
			}
			r.Networks++
		}()
	}
	wg.Wait()
	vols, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		errs = append(errs, fmt.Errorf("list volumes: %w", err))
	}
	for _, v := range vols.Items {
		if _, err := cli.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true}); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("remove volume %s: %w", v.Name, err))
			continue
		}
		r.Volumes++
	}
	return r, errors.Join(errs...)
}

func containerName(c container.Summary) string {
	if len(c.Names) > 0 {
		return c.Names[0]
	}
	return c.ID[:12]
}

// parallel runs fn for each name concurrently and returns the first error (by name order).
func parallel(ctx context.Context, names []string, fn func(context.Context, string) error) error {
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(ctx, n)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// callCtx runs a context-free call (the Toxiproxy client) bounded by ctx.
func callCtx(ctx context.Context, fn func() error) error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// live envs, torn down on SIGINT/SIGTERM.
var (
	liveMu sync.Mutex
	live   = map[*Env]bool{}
)

func register(e *Env) {
	installSignalHandler()
	liveMu.Lock()
	live[e] = true
	liveMu.Unlock()
}

func unregister(e *Env) {
	liveMu.Lock()
	delete(live, e)
	liveMu.Unlock()
}

// liveEnvs returns the envs not yet torn down.
func liveEnvs() []*Env {
	liveMu.Lock()
	defer liveMu.Unlock()
	out := make([]*Env, 0, len(live))
	for e := range live {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].runID < out[j].runID })
	return out
}
