package harness

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// banner dials addr and returns the first line, bounded by a deadline.
func banner(t *testing.T, addr string) (string, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}

// TestToyStack brings the toy stack (bannerd as every server) up once and
// exercises every handle against it.
func TestToyStack(t *testing.T) {
	if testing.Short() {
		t.Skip("Docker test")
	}
	needTestImages(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	d, err := Load("testdata/toy/stack.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	runID := testRunID()
	start := time.Now()
	env, err := Up(ctx, d, Options{RunID: runID, OutDir: out, Logger: testLogger(t), Users: 5})
	defer func() {
		if err := env.Teardown(context.Background()); err != nil {
			t.Errorf("teardown: %v", err)
		}
		assertNothingLeft(t, runID)
	}()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("toy stack up in %s", time.Since(start).Round(time.Millisecond))

	smtp, err := env.Endpoint("smtp")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("endpoint through toxiproxy", func(t *testing.T) {
		if line, err := banner(t, smtp); err != nil || line != "220 front ready" {
			t.Fatalf("banner %q, %v", line, err)
		}
		imap, _ := env.Endpoint("imap")
		if line, err := banner(t, imap); err != nil || line != "* OK front ready" {
			t.Fatalf("imap banner %q, %v", line, err)
		}
		if _, err := env.Endpoint("pop3"); err == nil {
			t.Error("unknown endpoint accepted")
		}
	})
	t.Run("files and users", func(t *testing.T) {
		front, _ := env.Node("front")
		code, outp, err := front.Exec(ctx, []string{"/bannerd", "cat", "/etc/mailchaos/users"})
		if err != nil || code != 0 {
			t.Fatalf("exec: %d %v %s", code, err, outp)
		}
		if !strings.HasPrefix(outp, "user0001@example.test:pass-0001\n") || strings.Count(outp, "@example.test") != 5 {
			t.Errorf("users file:\n%s", outp)
		}
		code, outp, _ = front.Exec(ctx, []string{"/bannerd", "cat", "/etc/mailchaos/tls/ca.pem"})
		if code != 0 || outp != string(env.CACertPEM()) {
			t.Errorf("ca.pem differs from the env's CA (exit %d)", code)
		}
		back, _ := env.Node("back-a")
		_, outp, _ = back.Exec(ctx, []string{"/bannerd", "cat", "/etc/back.conf"})
		if want := "# back config for back-a in run " + runID; !strings.Contains(outp, want) {
			t.Errorf("rendered source: %q, want %q", outp, want)
		}
		code, outp, err = back.Exec(ctx, []string{"/bannerd", "say", "bye", "7"})
		if err != nil || code != 7 || outp != "bye\n" {
			t.Errorf("exit code: %d %q %v", code, outp, err)
		}
	})
	t.Run("toxiproxy API reachable from the harness only", func(t *testing.T) {
		testProxyIsolation(ctx, t, env)
	})
	// What a server logs of a client's AUTH (bannerd logs every line it
	// gets) must not reach the saved logs: checked after Teardown.
	users := env.Users()
	authLine := "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+users[0].Address+"\x00"+users[0].Password))
	loginLine := "a1 LOGIN " + users[1].Address + " " + users[1].Password
	if err := sendLines(smtp, authLine, loginLine); err != nil {
		t.Fatal(err)
	}
	t.Run("edge control", func(t *testing.T) {
		edge, err := env.Edge()
		if err != nil {
			t.Fatal(err)
		}
		if err := edge.Drain(ctx, "back-a"); err != nil {
			t.Error(err)
		}
		if err := edge.Enable(ctx, "back-a"); err != nil {
			t.Error(err)
		}
		if n, err := edge.Sessions(ctx, "back-a"); err != nil || n != 3 {
			t.Errorf("sessions %d %v", n, err)
		}
		if err := edge.Drain(ctx, "nope"); err == nil {
			t.Error("drain of an unknown node succeeded")
		}
	})
	t.Run("kill and start keep host ports", func(t *testing.T) {
		b, _ := env.Node("back-b")
		addr, _ := b.Addr("smtp")
		if err := b.Kill(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := banner(t, addr); err == nil {
			t.Error("killed node still answers")
		}
		if err := b.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if addr2, _ := b.Addr("smtp"); addr2 != addr {
			t.Errorf("host port moved: %s -> %s", addr, addr2)
		}
		if line, err := banner(t, addr); err != nil || line != "220 back-b ready" {
			t.Errorf("after restart: %q %v", line, err)
		}
		if err := b.Restart(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("pause", func(t *testing.T) {
		b, _ := env.Node("back-b")
		if err := b.Pause(ctx); err != nil {
			t.Fatal(err)
		}
		addr, _ := b.Addr("smtp")
		if _, err := banner(t, addr); err == nil {
			t.Error("paused node answered")
		}
		if err := b.Unpause(ctx); err != nil {
			t.Fatal(err)
		}
		if err := b.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("link toxics and enable", func(t *testing.T) {
		l, err := env.Link("client-smtp")
		if err != nil {
			t.Fatal(err)
		}
		if err := l.AddToxic(ctx, Toxic{Name: "slow", Type: "latency", Attributes: map[string]any{"latency": 700}}); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		if _, err := banner(t, smtp); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(t0); took < 600*time.Millisecond {
			t.Errorf("latency toxic: banner after %s", took)
		}
		if err := l.RemoveToxic(ctx, "slow"); err != nil {
			t.Fatal(err)
		}
		if err := l.SetEnabled(ctx, false); err != nil {
			t.Fatal(err)
		}
		if line, err := banner(t, smtp); err == nil {
			t.Errorf("disabled link answered %q", line)
		}
		if err := l.SetEnabled(ctx, true); err != nil {
			t.Fatal(err)
		}
		if _, err := banner(t, smtp); err != nil {
			t.Errorf("re-enabled link: %v", err)
		}
		if err := env.HealLinks(ctx); err != nil {
			t.Error(err)
		}
	})
	t.Run("disconnect and connect", func(t *testing.T) {
		// back-b is reached from region a only through the wan-a-b link.
		b, _ := env.Node("back-b")
		a, _ := env.Node("back-a")
		_ = a
		if err := b.Disconnect(ctx); err != nil {
			t.Fatal(err)
		}
		if err := b.Disconnect(ctx); err != nil {
			t.Errorf("second disconnect: %v", err)
		}
		if err := b.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		if err := b.Connect(ctx); err != nil {
			t.Errorf("second connect: %v", err)
		}
		if err := b.WaitReady(ctx); err != nil {
			t.Errorf("published port after reconnect: %v", err)
		}
	})
	t.Run("replace keeps name, ports and volumes", func(t *testing.T) {
		a, _ := env.Node("back-a")
		addr, _ := a.Addr("smtp")
		// Write into the volume, replace, read back.
		writeFile(ctx, t, a, "/data/marker", "kept")
		if err := a.Replace(ctx, testImage); err != nil {
			t.Fatal(err)
		}
		// The old container's log, saved before it went: it was stopped
		// (SIGTERM), which the new one has not been.
		if b, err := os.ReadFile(filepath.Join(out, "logs", "back-a.1.log")); err != nil || !strings.Contains(string(b), "listening on 25") || !strings.Contains(string(b), "stopping on terminated") {
			t.Errorf("replaced container's log: %q, %v", b, err)
		}
		if line, err := banner(t, addr); err != nil || line != "220 back-a ready" {
			t.Errorf("after replace: %q %v", line, err)
		}
		if code, outp, err := a.Exec(ctx, []string{"/bannerd", "cat", "/data/marker"}); err != nil || code != 0 || outp != "kept" {
			t.Errorf("volume after replace: exit %d %q %v", code, outp, err)
		}
		if err := a.Replace(ctx, "mailchaos/does-not-exist:v9"); err == nil || !errors.Is(err, ErrImageMissing) {
			t.Errorf("replace with a missing image: %v", err)
		}
	})
	t.Run("drop volumes", func(t *testing.T) {
		a, _ := env.Node("back-a")
		addr, _ := a.Addr("smtp")
		writeFile(ctx, t, a, "/data/marker", "doomed")
		if err := a.DropVolumes(ctx); err == nil || !strings.Contains(err.Error(), "kill or stop it first") {
			t.Fatalf("drop volumes of a running node = %v, want a refusal", err)
		}
		if code, _, _ := a.Exec(ctx, []string{"/bannerd", "cat", "/data/marker"}); code != 0 {
			t.Fatal("a refused drop deleted the volume")
		}
		if err := a.Kill(ctx); err != nil {
			t.Fatal(err)
		}
		if err := a.Disconnect(ctx); err != nil {
			t.Fatal(err)
		}
		if err := a.DropVolumes(ctx); err != nil {
			t.Fatal(err)
		}
		// The killed container's log, the second of back-a's removed ones.
		if b, err := os.ReadFile(filepath.Join(out, "logs", "back-a.2.log")); err != nil || !strings.Contains(string(b), "listening on 25") || strings.Contains(string(b), "stopping on") {
			t.Errorf("dropped container's log: %q, %v", b, err)
		}
		// Still down and still cut off: the caller decides when it returns.
		if a.running(ctx) {
			t.Error("running after DropVolumes")
		}
		ins, err := env.cli.ContainerInspect(ctx, a.containerID(), client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if nets := ins.Container.NetworkSettings.Networks; len(nets) != 0 {
			t.Errorf("recreated container joined %d networks while its node was disconnected", len(nets))
		}
		vol := env.volumeName("back-a", "data")
		v, err := env.cli.VolumeInspect(ctx, vol, client.VolumeInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if v.Volume.Labels[LabelRun] != runID || v.Volume.Labels[LabelService] != "back-a" {
			t.Errorf("new volume %s labels %v: Teardown would miss it", vol, v.Volume.Labels)
		}
		if err := a.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		if err := a.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if code, outp, _ := a.Exec(ctx, []string{"/bannerd", "cat", "/data/marker"}); code == 0 {
			t.Errorf("marker survived DropVolumes: %q", outp)
		}
		if line, err := banner(t, addr); err != nil || line != "220 back-a ready" {
			t.Errorf("same host port after DropVolumes: %q %v", line, err)
		}
		if code, outp, _ := a.Exec(ctx, []string{"/bannerd", "cat", "/etc/back.conf"}); code != 0 || !strings.Contains(outp, runID) {
			t.Errorf("recreated container lacks its files: exit %d %q", code, outp)
		}
	})
	t.Run("region stop and start", func(t *testing.T) {
		r, err := env.Region("a")
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Nodes()) != 1 {
			t.Fatalf("region a nodes %d", len(r.Nodes()))
		}
		if err := r.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.Kill(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("logs", func(t *testing.T) {
		b, _ := env.Node("back-b")
		rc, err := b.Logs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(rc)
		_ = rc.Close()
		if !strings.Contains(string(data), "listening on 25") {
			t.Errorf("log: %q", data)
		}
	})

	if err := env.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := env.Teardown(ctx); err != nil {
		t.Errorf("second teardown: %v", err)
	}
	for _, svc := range []string{"front", "back-a", "back-b", "toxiproxy"} {
		if st, err := os.Stat(filepath.Join(out, "logs", svc+".log")); err != nil || st.Size() == 0 {
			t.Errorf("log of %s not saved: %v", svc, err)
		}
	}
	saved, _ := filepath.Glob(filepath.Join(out, "logs", "*.log"))
	if len(saved) != 6 {
		t.Errorf("saved logs %v: want the 4 containers' and back-a's 2 removed ones", saved)
	}
	front, err := os.ReadFile(filepath.Join(out, "logs", "front.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"got AUTH PLAIN [redacted]", "got a1 LOGIN " + users[1].Address + " [redacted]"} {
		if !strings.Contains(string(front), want) {
			t.Errorf("front.log lacks %q:\n%s", want, front)
		}
	}
	for _, u := range users[:2] {
		if strings.Contains(string(front), u.Password) {
			t.Errorf("front.log holds %s's password:\n%s", u.Address, front)
		}
	}
}

// sendLines sends lines on one connection to addr (after its banner) and
// waits for each echo, so the server has logged them.
func sendLines(addr string, lines ...string) error {
	conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(conn)
	if _, err := r.ReadString('\n'); err != nil {
		return fmt.Errorf("banner: %w", err)
	}
	for _, l := range lines {
		if _, err := fmt.Fprintf(conn, "%s\r\n", l); err != nil {
			return err
		}
		if _, err := r.ReadString('\n'); err != nil {
			return fmt.Errorf("echo of %q: %w", l, err)
		}
	}
	return nil
}

// testProxyIsolation checks that no service container reaches Toxiproxy's
// API, by its alias, by the API's own host name or by its address on the
// control network, while each reaches Toxiproxy's links, and the harness
// reaches the API through its published port.
func testProxyIsolation(ctx context.Context, t *testing.T, env *Env) {
	t.Helper()
	get := []string{"GET /proxies HTTP/1.0", ""}
	ins, err := env.cli.ContainerInspect(ctx, env.proxy.containerID(), client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctl := ins.Container.NetworkSettings.Networks[env.resName(controlNetwork)]
	if ctl == nil || !ctl.IPAddress.IsValid() {
		t.Fatalf("toxiproxy is not on the control network: %v", ins.Container.NetworkSettings.Networks)
	}
	nw, err := env.cli.NetworkInspect(ctx, env.resName(controlNetwork), client.NetworkInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(nw.Network.Containers); n != 1 {
		t.Errorf("%d containers on the control network, want toxiproxy alone", n)
	}
	wan, _ := env.Link("wan-a-b")
	for _, n := range env.Nodes() {
		// A link's port answers from every network: the service does reach
		// the toxiproxy container, just not its API.
		code, outp, err := n.Exec(ctx, []string{"/bannerd", "dial", "toxiproxy:" + strconv.Itoa(wan.Listen())})
		if err != nil || code != 0 || !strings.HasPrefix(outp, "220 back-b ready") {
			t.Errorf("%s: link wan-a-b through toxiproxy: exit %d %q %v", n.Name(), code, outp, err)
		}
		for _, addr := range []string{"toxiproxy:8474", ProxyAPIHost + ":8474", net.JoinHostPort(ctl.IPAddress.String(), "8474")} {
			code, outp, err := n.Exec(ctx, append([]string{"/bannerd", "dial", addr}, get...))
			if err != nil || code == 0 {
				t.Errorf("%s reached toxiproxy's API at %s: exit %d %q %v", n.Name(), addr, code, outp, err)
			} else {
				t.Logf("%s -> %s: %s", n.Name(), addr, strings.TrimSpace(outp))
			}
		}
	}
	api, err := env.ProxyAPI()
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + api + "/proxies")
	if err != nil {
		t.Fatalf("the harness cannot reach the API at %s: %v", api, err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.Count(string(body), `"upstream"`) != len(env.Links()) {
		t.Errorf("GET %s/proxies: %s %s", api, resp.Status, body)
	}
}

// TestMissingImage: a missing image is one line with the fix, and nothing is left.
func TestMissingImage(t *testing.T) {
	if testing.Short() {
		t.Skip("Docker test")
	}
	needDocker(t)
	d, err := Load("testdata/toy/stack.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d.Services["back-a"].Image = "mailchaos/mta:v0-missing"
	runID := testRunID()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	env, err := Up(ctx, d, Options{RunID: runID, OutDir: t.TempDir()})
	defer env.Teardown(context.Background())
	if err == nil {
		t.Fatal("Up succeeded with a missing image")
	}
	want := "image mailchaos/mta:v0-missing is not on this Docker engine: run 'make images' (or build your own image with that tag)"
	if !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "\n") || !errors.Is(err, ErrImageMissing) {
		t.Errorf("error:\n%v\nwant one line starting %q", err, want)
	}
	assertNothingLeft(t, runID)
}

// TestNoDocker runs Up in a child process with DOCKER_HOST pointing nowhere
// (testcontainers caches the engine address per process).
func TestNoDocker(t *testing.T) {
	if os.Getenv("MAILCHAOS_NODOCKER_CHILD") == "1" {
		d, err := Load("testdata/toy/stack.yaml")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		env, err := Up(ctx, d, Options{RunID: testRunID(), OutDir: t.TempDir()})
		defer env.Teardown(context.Background())
		if err == nil {
			t.Fatal("Up succeeded without an engine")
		}
		os.Stdout.WriteString("ERROR>" + err.Error() + "<ERROR\n")
		if !errors.Is(err, ErrNoDocker) {
			t.Fatalf("not ErrNoDocker: %v", err)
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestNoDocker$", "-test.count=1")
	cmd.Env = append(os.Environ(), "MAILCHAOS_NODOCKER_CHILD=1", "DOCKER_HOST=tcp://127.0.0.1:1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	s := string(out)
	i, j := strings.Index(s, "ERROR>"), strings.Index(s, "<ERROR")
	if i < 0 || j < i {
		t.Fatalf("no error in child output:\n%s", s)
	}
	msg := s[i+6 : j]
	t.Logf("error: %s", msg)
	if strings.Contains(msg, "\n") || !strings.Contains(msg, "tcp://127.0.0.1:1") || !strings.Contains(msg, "is the Docker daemon running? set DOCKER_HOST") {
		t.Errorf("want one line naming the host, the cause and the fix: %q", msg)
	}
}

// writeFile puts content at path in n's container (into a volume when the
// path is on one), through the Docker API: the test image has no shell.
func writeFile(ctx context.Context, t *testing.T, n *Node, path, content string) {
	t.Helper()
	tarball, err := tarFiles([]renderedFile{{Path: path, Mode: 0o644, Data: []byte(content)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.cli().CopyToContainer(ctx, n.containerID(), client.CopyToContainerOptions{DestinationPath: "/", Content: tarball}); err != nil {
		t.Fatalf("write %s in %s: %v", path, n.Name(), err)
	}
}
