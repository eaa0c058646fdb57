package harness

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
)

// Labels put on every container, network and volume the harness creates.
const (
	// LabelRun carries the run id; Teardown and Clean select by it.
	LabelRun = "mailchaos.run"
	// LabelService carries the service name (containers and volumes).
	LabelService = "mailchaos.service"
	// LabelRole carries the service role (containers).
	LabelRole = "mailchaos.role"
	// LabelRegion carries the service region (containers).
	LabelRegion = "mailchaos.region"
)

// ErrNoDocker is wrapped by errors about an unreachable Docker engine.
var ErrNoDocker = errors.New("no reachable Docker engine")

// ErrImageMissing is wrapped by errors about an image that is not on the engine.
var ErrImageMissing = errors.New("image is not on this Docker engine")

func init() {
	// testcontainers' reaper (Ryuk) would need a registry; the harness removes
	// what it made by label instead. Must be set before testcontainers reads
	// its configuration, which it does lazily on first use.
	if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" {
		_ = os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
	tclog.SetDefault(tcLogger{})
}

// tcLogger sends testcontainers' chatter to slog at debug level.
type tcLogger struct{}

func (tcLogger) Printf(format string, v ...any) {
	slog.Debug(strings.TrimSpace(fmt.Sprintf(format, v...)), "from", "testcontainers")
}

// dockerError wraps an engine connection failure with ErrNoDocker and a
// one-line cause and fix.
type dockerError struct {
	host  string
	cause error
}

func (e *dockerError) Error() string {
	cause := rootCause(e.cause)
	if client.IsErrConnectionFailed(e.cause) {
		// The client's message hides the dial error; find it ourselves.
		cause = dialCause(e.host)
	}
	return fmt.Sprintf("no Docker engine at %s (%s): is the Docker daemon running? set DOCKER_HOST to a reachable engine (e.g. unix:///var/run/docker.sock or tcp://host:2375)", e.host, cause)
}

// dialCause dials a Docker host address and describes why it fails.
func dialCause(host string) string {
	proto, addr, ok := strings.Cut(host, "://")
	if !ok || (proto != "tcp" && proto != "unix") {
		return "cannot connect"
	}
	conn, err := net.DialTimeout(proto, addr, 3*time.Second)
	if err != nil {
		return rootCause(err)
	}
	_ = conn.Close()
	return "it accepts connections but does not answer the Docker API"
}

func (e *dockerError) Unwrap() []error { return []error{ErrNoDocker, e.cause} }

// rootCause returns a short description of the innermost error.
func rootCause(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dnsErr.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	s := strings.ReplaceAll(err.Error(), "\n", " ")
	if i := strings.LastIndex(s, ": "); i >= 0 && len(s)-i > 8 {
		return s[i+2:]
	}
	return s
}

// connectDocker returns a client for the engine, after checking that it
// answers. An explicit DOCKER_HOST is used as given (testcontainers-go would
// silently fall back to another engine when it does not answer); otherwise
// testcontainers-go discovers the engine (~/.testcontainers.properties,
// the default socket, rootless sockets).
func connectDocker(ctx context.Context) (*client.Client, error) {
	host := os.Getenv("DOCKER_HOST")
	var cli *client.Client
	var err error
	if host != "" {
		cli, err = client.New(client.FromEnv)
	} else {
		host = client.DefaultDockerHost
		cli, err = discoverDocker(ctx)
	}
	if err != nil {
		return nil, &dockerError{host: host, cause: err}
	}
	host = cli.DaemonHost()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		_ = cli.Close()
		return nil, &dockerError{host: host, cause: err}
	}
	return cli, nil
}

// discoverDocker asks testcontainers-go for a client.
func discoverDocker(ctx context.Context) (cli *client.Client, err error) {
	func() {
		defer func() {
			// testcontainers panics when it cannot find any Docker socket.
			if r := recover(); r != nil {
				err = fmt.Errorf("%v", r)
			}
		}()
		var tc *testcontainers.DockerClient
		tc, err = testcontainers.NewDockerClientWithOpts(ctx)
		if err == nil {
			cli = tc.Client
		}
	}()
	return cli, err
}

// checkImages fails with one line when any image is missing; it never pulls.
func checkImages(ctx context.Context, cli *client.Client, images []string) error {
	var missing []string
	seen := map[string]bool{}
	for _, img := range images {
		if img == "" || seen[img] {
			continue
		}
		seen[img] = true
		if _, err := cli.ImageInspect(ctx, img); err != nil {
			if cerrdefs.IsNotFound(err) {
				missing = append(missing, img)
				continue
			}
			return fmt.Errorf("inspect image %s: %w", img, err)
		}
	}
	switch len(missing) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("image %s is not on this Docker engine: run 'make images' (or build your own image with that tag): %w", missing[0], ErrImageMissing)
	default:
		return fmt.Errorf("images %s are not on this Docker engine: run 'make images' (or build your own images with those tags): %w", strings.Join(missing, ", "), ErrImageMissing)
	}
}

// tarFiles packs files into a tar archive rooted at /.
func tarFiles(files []renderedFile) (io.Reader, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	for _, f := range files {
		// No directory entries: Docker creates missing parents (0755 root)
		// and an entry for an existing one would reset its owner and mode.
		hdr := &tar.Header{
			Name:    strings.TrimPrefix(f.Path, "/"),
			Mode:    f.Mode,
			Size:    int64(len(f.Data)),
			Uid:     f.UID,
			Gid:     f.GID,
			ModTime: now,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
}

// logTail returns the last n lines of a container's log (stdout and
// stderr), redacted: errors quote it, and errors end up in reports.
func (r *redactor) logTail(ctx context.Context, cli *client.Client, id string, n int) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	rc, err := cli.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: fmt.Sprint(n)})
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	_, _ = stdcopy.StdCopy(&buf, &buf, rc)
	return r.text(strings.TrimRight(buf.String(), "\n"))
}

// freePorts returns n distinct free TCP ports on 127.0.0.1. All listeners
// are held until every port is chosen, so the ports differ; they are closed
// before returning, leaving a small window in which another process could
// take one (Docker then fails the start with "port is already allocated").
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free host port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
