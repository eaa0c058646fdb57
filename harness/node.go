package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// Node is the handle of one service container. Its host ports, name,
// aliases and volumes stay the same across Stop/Start, Kill and Replace.
type Node struct {
	env       *Env
	spec      *ServiceSpec
	files     []renderedFile
	ports     map[string]int // port name -> container port
	hostPorts map[string]int // port name -> host port on 127.0.0.1
	proxy     bool           // the toxiproxy container

	mu           sync.Mutex // guards id, image, disconnected; serialises lifecycle calls
	id           string
	image        string
	disconnected bool
}

// Name returns the service name.
func (n *Node) Name() string { return n.spec.Name }

// Region returns the service's region ("" = global).
func (n *Node) Region() string { return n.spec.Region }

// Role returns the service's role.
func (n *Node) Role() string { return n.spec.Role }

// Image returns the image the container currently runs.
func (n *Node) Image() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.image
}

// UpgradeImage returns the descriptor's upgrade image ("" when none).
func (n *Node) UpgradeImage() string { return n.spec.UpgradeImage }

// ContainerName returns the Docker container name, mc-<run>-<service>.
func (n *Node) ContainerName() string { return n.env.resName(n.spec.Name) }

// Ports returns the service's port names, sorted.
func (n *Node) Ports() []string { return sortedKeys(n.ports) }

// Addr returns the host address ("127.0.0.1:port") of a named port.
func (n *Node) Addr(port string) (string, error) {
	hp, ok := n.hostPorts[port]
	if !ok {
		return "", fmt.Errorf("%s: no port %q%s (ports: %s)", n.spec.Name, port, didYouMean(port, n.Ports()), strings.Join(n.Ports(), ", "))
	}
	return "127.0.0.1:" + strconv.Itoa(hp), nil
}

func (n *Node) cli() *client.Client { return n.env.cli }

func (n *Node) containerID() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.id
}

// networks returns the short names of the node's networks, primary first:
// the toxiproxy container's primary network is the control network.
func (n *Node) networks() []string {
	if n.proxy {
		return append([]string{controlNetwork}, n.env.d.Networks()...)
	}
	return n.env.d.NetworksOf(n.spec)
}

// endpointConfig returns the node's settings on network nw: its DNS
// aliases there and, on the control network, the gateway priority that
// makes Docker publish the toxiproxy container's ports through it.
func (n *Node) endpointConfig(nw string) *network.EndpointSettings {
	switch {
	case n.proxy && nw == controlNetwork:
		return &network.EndpointSettings{Aliases: []string{ProxyAPIHost}, GwPriority: 1}
	case n.proxy:
		return &network.EndpointSettings{Aliases: []string{"toxiproxy"}}
	}
	return &network.EndpointSettings{Aliases: []string{n.spec.Name}}
}

// create creates (not starts) the container with image, joins its networks
// and copies its files in. The caller holds no lock.
func (n *Node) create(ctx context.Context, image string) error {
	e, s := n.env, n.spec
	nets := n.networks()
	env := []string{"MAILCHAOS_RUN=" + e.runID, "MAILCHAOS_SERVICE=" + s.Name, "MAILCHAOS_REGION=" + s.Region}
	for _, k := range sortedKeys(s.Env) {
		env = append(env, k+"="+s.Env[k])
	}
	exposed := network.PortSet{}
	bindings := network.PortMap{}
	lo := netip.MustParseAddr("127.0.0.1")
	for _, pn := range sortedKeys(n.ports) {
		p, err := network.ParsePort(strconv.Itoa(n.ports[pn]) + "/tcp")
		if err != nil {
			return fmt.Errorf("create %s: port %s: %w", s.Name, pn, err)
		}
		exposed[p] = struct{}{}
		bindings[p] = append(bindings[p], network.PortBinding{HostIP: lo, HostPort: strconv.Itoa(n.hostPorts[pn])})
	}
	var mounts []mount.Mount
	for _, vn := range sortedKeys(s.Volumes) {
		mounts = append(mounts, mount.Mount{Type: mount.TypeVolume, Source: e.resName(s.Name + "-" + vn), Target: s.Volumes[vn]})
	}
	stop := int(n.stopTimeout() / time.Second)
	labels := e.labels(map[string]string{LabelService: s.Name, LabelRole: s.Role, LabelRegion: s.Region})
	primary := e.resName(nets[0])
	cfg := &container.Config{
		Hostname:     s.Name,
		Image:        image,
		Env:          env,
		Cmd:          s.Command,
		Labels:       labels,
		ExposedPorts: exposed,
		StopTimeout:  &stop,
	}
	hc := &container.HostConfig{
		NetworkMode:  container.NetworkMode(primary),
		PortBindings: bindings,
		Mounts:       mounts,
		Tmpfs:        s.Tmpfs, // empty at every start, unlike the writable layer
	}
	// API 1.41 accepts a single network at create; the others are joined below.
	nc := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{primary: n.endpointConfig(nets[0])}}
	res, err := n.cli().ContainerCreate(ctx, client.ContainerCreateOptions{Config: cfg, HostConfig: hc, NetworkingConfig: nc, Name: n.ContainerName()})
	if err != nil {
		return fmt.Errorf("create %s: %w", s.Name, err)
	}
	n.mu.Lock()
	n.id, n.image, n.disconnected = res.ID, image, false
	n.mu.Unlock()
	for _, nw := range nets[1:] {
		if _, err := n.cli().NetworkConnect(ctx, e.resName(nw), client.NetworkConnectOptions{Container: res.ID, EndpointConfig: n.endpointConfig(nw)}); err != nil {
			return fmt.Errorf("create %s: join network %s: %w", s.Name, nw, err)
		}
	}
	if len(n.files) > 0 {
		content, err := tarFiles(n.files)
		if err != nil {
			return fmt.Errorf("create %s: pack files: %w", s.Name, err)
		}
		if _, err := n.cli().CopyToContainer(ctx, res.ID, client.CopyToContainerOptions{DestinationPath: "/", Content: content}); err != nil {
			return fmt.Errorf("create %s: copy files: %w", s.Name, err)
		}
	}
	return nil
}

func (n *Node) stopTimeout() time.Duration {
	if n.spec.StopTimeout > 0 {
		return n.spec.StopTimeout.Std()
	}
	return DefaultStopTimeout
}

func (n *Node) readyTimeout() time.Duration {
	if n.env.opts.ReadyTimeout > 0 {
		return n.env.opts.ReadyTimeout
	}
	if n.spec.Ready.Timeout > 0 {
		return n.spec.Ready.Timeout.Std()
	}
	return DefaultReadyTimeout
}

// start starts the container without waiting for readiness.
func (n *Node) start(ctx context.Context) error {
	if _, err := n.cli().ContainerStart(ctx, n.containerID(), client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start %s: %w", n.spec.Name, err)
	}
	return nil
}

// Start starts the container and waits until it is ready.
func (n *Node) Start(ctx context.Context) error {
	t0 := time.Now()
	if err := n.start(ctx); err != nil {
		return err
	}
	n.env.log.Debug("started", "service", n.spec.Name, "took", time.Since(t0).Round(time.Millisecond))
	return n.WaitReady(ctx)
}

// Stop stops the container gracefully: SIGTERM, then SIGKILL after stop_timeout.
func (n *Node) Stop(ctx context.Context) error {
	secs := int(n.stopTimeout() / time.Second)
	if _, err := n.cli().ContainerStop(ctx, n.containerID(), client.ContainerStopOptions{Timeout: &secs}); err != nil {
		return fmt.Errorf("stop %s: %w", n.spec.Name, err)
	}
	return nil
}

// Kill sends SIGKILL: the abrupt crash of a node.
func (n *Node) Kill(ctx context.Context) error {
	if _, err := n.cli().ContainerKill(ctx, n.containerID(), client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		if cerrdefs.IsConflict(err) && !n.running(ctx) {
			return nil // already stopped
		}
		return fmt.Errorf("kill %s: %w", n.spec.Name, err)
	}
	return nil
}

// Restart stops the container gracefully, starts it and waits until ready.
func (n *Node) Restart(ctx context.Context) error {
	if err := n.Stop(ctx); err != nil {
		return err
	}
	return n.Start(ctx)
}

// Pause freezes every process of the container (cgroup freezer).
func (n *Node) Pause(ctx context.Context) error {
	if _, err := n.cli().ContainerPause(ctx, n.containerID(), client.ContainerPauseOptions{}); err != nil {
		return fmt.Errorf("pause %s: %w", n.spec.Name, err)
	}
	return nil
}

// Unpause resumes a paused container.
func (n *Node) Unpause(ctx context.Context) error {
	if _, err := n.cli().ContainerUnpause(ctx, n.containerID(), client.ContainerUnpauseOptions{}); err != nil {
		return fmt.Errorf("unpause %s: %w", n.spec.Name, err)
	}
	return nil
}

// Exec runs cmd in the container and returns its exit code and combined
// output. err is about running the command, not about its exit code.
func (n *Node) Exec(ctx context.Context, cmd []string) (int, string, error) {
	if len(cmd) == 0 {
		return -1, "", fmt.Errorf("exec in %s: empty command", n.spec.Name)
	}
	res, err := n.cli().ExecCreate(ctx, n.containerID(), client.ExecCreateOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return -1, "", fmt.Errorf("exec in %s: %w", n.spec.Name, err)
	}
	att, err := n.cli().ExecAttach(ctx, res.ID, client.ExecAttachOptions{})
	if err != nil {
		return -1, "", fmt.Errorf("exec in %s: %w", n.spec.Name, err)
	}
	stop := context.AfterFunc(ctx, att.Close) // a stuck command must not outlive ctx
	defer stop()
	defer att.Close()
	var buf bytes.Buffer
	if _, err := stdcopy.StdCopy(&buf, &buf, att.Reader); err != nil && ctx.Err() == nil {
		return -1, buf.String(), fmt.Errorf("exec in %s: read output: %w", n.spec.Name, err)
	}
	if ctx.Err() != nil {
		return -1, buf.String(), fmt.Errorf("exec in %s: %w", n.spec.Name, ctx.Err())
	}
	for {
		ins, err := n.cli().ExecInspect(ctx, res.ID, client.ExecInspectOptions{})
		if err != nil {
			return -1, buf.String(), fmt.Errorf("exec in %s: %w", n.spec.Name, err)
		}
		if !ins.Running {
			return ins.ExitCode, buf.String(), nil
		}
		select {
		case <-ctx.Done():
			return -1, buf.String(), fmt.Errorf("exec in %s: %w", n.spec.Name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Replace stops and removes the container, then creates one with image under
// the same name, aliases, networks, volumes, files and host ports, starts
// it and waits until ready: one step of a rolling upgrade. The old
// container's log is saved first, as logs/<service>.<n>.log.
func (n *Node) Replace(ctx context.Context, image string) error {
	if err := checkImages(ctx, n.cli(), []string{image}); err != nil {
		return fmt.Errorf("replace %s: %w", n.spec.Name, err)
	}
	if err := n.Stop(ctx); err != nil && !isNotFound(err) {
		return fmt.Errorf("replace %s: %w", n.spec.Name, err)
	}
	n.saveRetiredLog(ctx, n.containerID())
	if _, err := n.cli().ContainerRemove(ctx, n.containerID(), client.ContainerRemoveOptions{Force: true}); err != nil && !isNotFound(err) {
		return fmt.Errorf("replace %s: remove old container: %w", n.spec.Name, err)
	}
	if err := n.create(ctx, image); err != nil {
		return fmt.Errorf("replace: %w", err)
	}
	return n.Start(ctx)
}

// CanQuiesce reports whether the descriptor gives the node a quiesce command.
func (n *Node) CanQuiesce() bool { return len(n.spec.Quiesce) > 0 }

// Quiesced runs the node's quiesce command once: true when it exits 0 (no
// work in flight), false when it exits otherwise.
func (n *Node) Quiesced(ctx context.Context) (bool, error) {
	if !n.CanQuiesce() {
		return true, nil
	}
	code, out, err := n.Exec(ctx, n.spec.Quiesce)
	if err != nil {
		return false, fmt.Errorf("quiesce %s: %w", n.spec.Name, err)
	}
	if code != 0 && strings.TrimSpace(out) != "" {
		n.env.log.Debug("not quiesced yet", "node", n.spec.Name, "output", strings.TrimSpace(out))
	}
	return code == 0, nil
}

// Disconnect removes the container from all its networks: a hard partition
// (its published host ports stop answering too).
func (n *Node) Disconnect(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, nw := range n.networks() {
		if _, err := n.cli().NetworkDisconnect(ctx, n.env.resName(nw), client.NetworkDisconnectOptions{Container: n.id, Force: true}); err != nil && !notConnected(err) {
			return fmt.Errorf("disconnect %s from %s: %w", n.spec.Name, nw, err)
		}
	}
	n.disconnected = true
	return nil
}

// Connect rejoins the container's networks with its aliases.
func (n *Node) Connect(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, nw := range n.networks() {
		if _, err := n.cli().NetworkConnect(ctx, n.env.resName(nw), client.NetworkConnectOptions{Container: n.id, EndpointConfig: n.endpointConfig(nw)}); err != nil && !alreadyConnected(err) {
			return fmt.Errorf("connect %s to %s: %w", n.spec.Name, nw, err)
		}
	}
	n.disconnected = false
	return nil
}

// Logs returns the container's log so far (stdout and stderr
// interleaved), with the run's secrets redacted as in the saved logs.
func (n *Node) Logs(ctx context.Context) (io.ReadCloser, error) {
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(n.env.redact.copyLogs(ctx, n.cli(), n.containerID(), pw))
	}()
	return pr, nil
}

// Running reports whether the node's container runs (paused counts as
// running: its processes exist).
func (n *Node) Running(ctx context.Context) (bool, error) {
	st, err := n.state(ctx)
	if err != nil {
		return false, fmt.Errorf("inspect %s: %w", n.spec.Name, err)
	}
	return st.Running, nil
}

// running reports whether the container is running (and not paused).
func (n *Node) running(ctx context.Context) bool {
	st, err := n.state(ctx)
	return err == nil && st.Running && !st.Paused
}

func (n *Node) state(ctx context.Context) (*container.State, error) {
	res, err := n.cli().ContainerInspect(ctx, n.containerID(), client.ContainerInspectOptions{})
	if err != nil {
		return nil, err
	}
	if res.Container.State == nil {
		return nil, errors.New("no state")
	}
	return res.Container.State, nil
}

// WaitReady waits until the readiness probe passes, bounded by the service's
// ready timeout (and ctx). A container that exits meanwhile fails at once.
// Errors name the service and carry the tail of its log.
func (n *Node) WaitReady(ctx context.Context) error {
	timeout := n.readyTimeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r := n.spec.Ready
	var re *regexp.Regexp
	if r.Expect != "" {
		re = regexp.MustCompile(r.Expect) // validated by Parse
	}
	start := time.Now()
	var last error
	for i := 0; ; i++ {
		st, err := n.state(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			return fmt.Errorf("%s is not ready: %w", n.spec.Name, err)
		case err == nil && !st.Running && st.Status != container.StateCreated:
			return fmt.Errorf("%s is not ready: container %s (exit code %d) after %s; last %d log lines:\n%s",
				n.spec.Name, st.Status, st.ExitCode, time.Since(start).Round(time.Millisecond), logTailLines, n.env.redact.logTail(ctx, n.cli(), n.containerID(), logTailLines))
		case err == nil && st.Running:
			last = n.probe(ctx, re)
			if last == nil {
				n.env.log.Debug("ready", "service", n.spec.Name, "took", time.Since(start).Round(time.Millisecond))
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if last == nil {
				last = ctx.Err()
			}
			return fmt.Errorf("%s is not ready within %s (%v); last %d log lines:\n%s",
				n.spec.Name, timeout, last, logTailLines, n.env.redact.logTail(ctx, n.cli(), n.containerID(), logTailLines))
		case <-time.After(min(50*time.Millisecond*time.Duration(i+1), 500*time.Millisecond)):
		}
	}
}

// probe runs the readiness probe once.
func (n *Node) probe(ctx context.Context, re *regexp.Regexp) error {
	r := n.spec.Ready
	switch {
	case len(r.Exec) > 0:
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		code, out, err := n.Exec(pctx, r.Exec)
		if err != nil {
			return err
		}
		if code != 0 {
			return fmt.Errorf("ready.exec exited %d: %s", code, strings.TrimSpace(lastLine(out)))
		}
		return nil
	case r.Port != "":
		addr, err := n.Addr(r.Port)
		if err != nil {
			return err
		}
		return probeBanner(ctx, addr, re)
	}
	return nil
}

// probeBanner reads the first line at addr and matches it against re.
func probeBanner(ctx context.Context, addr string, re *regexp.Regexp) error {
	dl := time.Now().Add(3 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	dialer := net.Dialer{Deadline: dl}
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(dl)
	line, err := bufio.NewReader(io.LimitReader(conn, 4096)).ReadString('\n')
	if err != nil && line == "" {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%s closed before a banner", addr)
		}
		return fmt.Errorf("read banner at %s: %w", addr, err)
	}
	line = strings.TrimRight(line, "\r\n")
	if !re.MatchString(line) {
		return fmt.Errorf("banner %q at %s does not match %q", line, addr, re)
	}
	return nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func isNotFound(err error) bool { return cerrdefs.IsNotFound(err) }

func notConnected(err error) bool {
	return err != nil && (cerrdefs.IsNotFound(err) || strings.Contains(err.Error(), "is not connected"))
}

func alreadyConnected(err error) bool {
	return err != nil && (cerrdefs.IsConflict(err) || strings.Contains(err.Error(), "already exists") || strings.Contains(err.Error(), "already connected"))
}

// splitUpstream splits "service:port".
func splitUpstream(u string) (svc, port string, ok bool) { return strings.Cut(u, ":") }
