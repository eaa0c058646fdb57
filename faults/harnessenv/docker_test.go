package harnessenv

// Docker tests against the reference stack (fixtures/stacks/reference).
// One stack is brought up lazily for every test of the package and torn
// down in TestMain. Skipped with -short, or when Docker or the images are
// missing (make images).

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"

	"github.com/mailchaos/mailchaos/faults"
	"github.com/mailchaos/mailchaos/harness"
	"github.com/mailchaos/mailchaos/history"
)

const stackFile = "../../fixtures/stacks/reference/stack.yaml"

var (
	stackOnce sync.Once
	stackEnv  *harness.Env
	stackErr  error
	stackRun  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if stackEnv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		if err := stackEnv.Teardown(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "teardown:", err)
			code = 1
		}
		cancel()
		if left := leftovers(stackRun); left != "" {
			fmt.Fprintf(os.Stderr, "run %s left resources behind: %s\n", stackRun, left)
			code = 1
		}
	}
	os.Exit(code)
}

// leftovers lists containers, networks and volumes still labelled with run.
func leftovers(run string) string {
	var left []string
	for _, kind := range []string{"ps -a", "network ls", "volume ls"} {
		args := append(strings.Fields(kind), "-q", "--filter", "label=mailchaos.run="+run)
		out, _ := exec.Command("docker", args...).Output()
		if s := strings.TrimSpace(string(out)); s != "" {
			left = append(left, kind+": "+strings.ReplaceAll(s, "\n", " "))
		}
	}
	return strings.Join(left, "; ")
}

// stack returns the shared reference stack, bringing it up on first use.
func stack(t *testing.T) (*harness.Env, faults.Env) {
	t.Helper()
	if testing.Short() {
		t.Skip("Docker test (-short)")
	}
	if err := exec.Command("docker", "version").Run(); err != nil {
		t.Skip("no Docker engine")
	}
	stackOnce.Do(func() {
		d, err := harness.Load(stackFile)
		if err != nil {
			stackErr = err
			return
		}
		b := make([]byte, 2)
		rand.Read(b)
		stackRun = "dev-flt-" + hex.EncodeToString(b)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		start := time.Now()
		stackEnv, stackErr = harness.Up(ctx, d, harness.Options{RunID: stackRun, OutDir: os.TempDir() + "/mailchaos-" + stackRun,
			Users: 5, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		fmt.Fprintf(os.Stderr, "reference stack %s up in %s (err %v)\n", stackRun, time.Since(start).Round(time.Millisecond), stackErr)
	})
	if stackErr != nil {
		if strings.Contains(stackErr.Error(), "make images") || strings.Contains(stackErr.Error(), "No such image") {
			t.Skipf("images missing: %v", stackErr)
		}
		t.Fatalf("reference stack: %v", stackErr)
	}
	return stackEnv, New(stackEnv)
}

// banner reads the first line at addr within d.
func banner(addr string, d time.Duration) (string, error) {
	c, err := net.DialTimeout("tcp", addr, d)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(d))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func nodeAddr(t *testing.T, e *harness.Env, node, port string) string {
	t.Helper()
	n, err := e.Node(node)
	if err != nil {
		t.Fatal(err)
	}
	a, err := n.Addr(port)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func endpoint(t *testing.T, e *harness.Env, name string) string {
	t.Helper()
	a, err := e.Endpoint(name)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func newID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "flt." + hex.EncodeToString(b)
}

// sendMail sends one message to user0001 with id in X-Mailchaos-Id; errors
// are prefixed with the stage that failed.
func sendMail(addr, id string) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello("faults.test"); err != nil {
		return fmt.Errorf("hello: %w", err)
	}
	if err := c.Mail("faults@example.test", nil); err != nil {
		return fmt.Errorf("mail: %w", err)
	}
	if err := c.Rcpt("user0001@example.test", nil); err != nil {
		return fmt.Errorf("rcpt: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}
	fmt.Fprintf(w, "From: faults@example.test\r\nTo: user0001@example.test\r\nSubject: %s\r\nX-Mailchaos-Id: %s\r\n\r\nbody of %s\r\n", id, id, id)
	if err := w.Close(); err != nil {
		return fmt.Errorf("data-end: %w", err)
	}
	return c.Quit()
}

// imapLogin logs user0001 in at addr with INBOX selected; the connection
// has a deadline 60 s from now.
func imapLogin(addr string) (*imapclient.Client, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	c := imapclient.New(conn, nil)
	u := stackEnv.Users()[0] // passwords are random per run
	if err := c.Login(u.Address, u.Password).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("login: %w", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("select: %w", err)
	}
	return c, nil
}

// imapCount counts user0001's INBOX messages carrying id, via addr.
func imapCount(addr, id string) (int, error) {
	c, err := imapLogin(addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	data, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "X-Mailchaos-Id", Value: id}}}, nil).Wait()
	if err != nil {
		return 0, fmt.Errorf("search: %w", err)
	}
	c.Logout().Wait()
	return len(data.AllUIDs()), nil
}

// waitCount polls imapCount until it returns want or within passes.
func waitCount(addr, id string, want int, within time.Duration) (int, error) {
	deadline := time.Now().Add(within)
	for {
		n, err := imapCount(addr, id)
		if (err == nil && n == want) || time.Now().After(deadline) {
			return n, err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// recorder is an EventSink keeping each event's duration.
type recorder struct {
	mu     sync.Mutex
	inject map[string][]time.Duration
	heal   map[string][]time.Duration
	errs   []string
}

func newRecorder() *recorder {
	return &recorder{inject: map[string][]time.Duration{}, heal: map[string][]time.Duration{}}
}

func (r *recorder) Event(kind history.Kind, name, target string, start, end time.Time, err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errs = append(r.errs, fmt.Sprintf("%s %s:%s: %v", kind, name, target, err))
	}
	if kind == history.KindFaultInject {
		r.inject[name] = append(r.inject[name], end.Sub(start))
	} else {
		r.heal[name] = append(r.heal[name], end.Sub(start))
	}
	return nil
}

func (r *recorder) injected(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.inject[name])
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// during injects spec, runs check while it holds, heals it (verified),
// and returns the recorder with the inject and heal durations.
func during(t *testing.T, fe faults.Env, spec string, check func()) *recorder {
	t.Helper()
	f, err := faults.Parse(fe, spec)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	// Held until cancel: End bounds the hold, the check decides it.
	tl := &faults.Timeline{Events: rec, Steps: []faults.Step{{At: 0, Fault: f, Spec: spec}}, End: 10 * time.Minute, HealTimeout: 2 * time.Minute}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tl.Run(ctx) }()
	deadline := time.Now().Add(3 * time.Minute)
	for rec.injected(f.Name()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	func() {
		defer cancel() // heal even if check fails the test
		check()
	}()
	if err := <-done; err != nil {
		t.Fatalf("%s: %v", spec, err)
	}
	t.Logf("%s: inject %v, heal %v", spec, median(rec.inject[f.Name()]).Round(time.Millisecond), median(rec.heal[f.Name()]).Round(time.Millisecond))
	return rec
}
