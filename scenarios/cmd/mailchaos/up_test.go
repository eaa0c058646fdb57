package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailchaos/mailchaos/harness"
)

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"user0001@example.test":   "user0001@example.test",
		"/tmp/out/r1/ca.pem":      "/tmp/out/r1/ca.pem",
		"/tmp/my out/ca.pem":      "'/tmp/my out/ca.pem'",
		"it's":                    `'it'\''s'`,
		"imap://h:1/INBOX/;UID=1": "'imap://h:1/INBOX/;UID=1'",
		"":                        "''",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

// Bad flags are refused before anything starts, every problem at once.
func TestUpRefusesBadFlags(t *testing.T) {
	code, _, errOut := runCaptured(context.Background(), t, "up", func(ctx context.Context, args []string, out, errOut *syncBuffer) error {
		return upCmd(ctx, args, out, errOut)
	}, "--stack", "/nonexistent.yaml", "--users", "-1", "--for", "1s", "--run-id", "UP")
	if code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	for _, w := range []string{"--stack", "--users", "--for", "--run-id"} {
		if !strings.Contains(errOut, w) {
			t.Errorf("stderr lacks %s: %s", w, errOut)
		}
	}
	code, _, errOut = runCaptured(context.Background(), t, "down", func(ctx context.Context, args []string, out, _ *syncBuffer) error {
		return downCmd(ctx, args, out)
	})
	if code != 2 || !strings.Contains(errOut, "--run") {
		t.Errorf("down without --run: exit %d, %s", code, errOut)
	}
}

var (
	endpointLine = regexp.MustCompile(`(?m)^  (smtp|submission|imap)\s+127\.0\.0\.1:(\d+)$`)
	caLine       = regexp.MustCompile(`(?m)^CA file: (.+)$`)
)

// `mailchaos up` on the reference stack, through the command's own code
// path: it prints the endpoints, a CA file that holds the run's CA, and a
// swaks and a curl command aimed at them; where swaks and curl are
// installed, the swaks command delivers a message that the curl command
// reads back with the CA verified (and without the CA, curl refuses the
// server). `mailchaos down` then stops it, and nothing is left.
func TestUpPrintsWorkingCommands(t *testing.T) {
	needDocker(t)
	out := t.TempDir()
	id := testRunID("up")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- upCmd(ctx, []string{"--stack", referenceStack, "--run-id", id, "--out", out, "--users", "3"}, &stdout, &stderr)
	}()
	finished := false
	t.Cleanup(func() {
		if !finished {
			cancel()
			<-done
		}
		if left := leftovers(id); left != "" {
			t.Errorf("run %s left resources behind: %s", id, left)
			_, _ = harness.Clean(context.Background(), harness.CleanOptions{Run: id, Force: true})
		}
	})

	// Wait for the stack, printed.
	deadline := time.After(3 * time.Minute)
	for !strings.Contains(stdout.String(), "\nstop: ") {
		select {
		case err := <-done:
			finished = true
			skipIfNoImages(t, stderr.String())
			t.Fatalf("up returned before the stack was printed: %v\n%s", err, stderr.String())
		case <-deadline:
			t.Fatalf("the stack was not printed within 3m:\n%s", stderr.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
	text := stdout.String()
	t.Logf("mailchaos up printed:\n%s", text)

	ports := map[string]string{}
	for _, m := range endpointLine.FindAllStringSubmatch(text, -1) {
		ports[m[1]] = m[2]
	}
	for _, ep := range []string{"smtp", "submission", "imap"} {
		if ports[ep] == "" {
			t.Errorf("no %s endpoint printed", ep)
		}
	}
	m := caLine.FindStringSubmatch(text)
	if m == nil {
		t.Fatal("no CA file printed")
	}
	ca := m[1]
	absOut, _ := filepath.Abs(out)
	if ca != filepath.Join(absOut, id, "ca.pem") {
		t.Errorf("CA file %s, want <out>/<run id>/ca.pem, absolute", ca)
	}
	pemBytes, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := pem.Decode(pemBytes); b == nil {
		t.Errorf("%s holds no PEM block", ca)
	} else if cert, err := x509.ParseCertificate(b.Bytes); err != nil || !cert.IsCA {
		t.Errorf("%s is not a CA certificate (%v)", ca, err)
	}
	if got := strings.Count(text, "@example.test "); got < 3 {
		t.Errorf("%d logins printed, want 3", got)
	}
	swaks := lineAfter(text, "send a message")
	curl := lineAfter(text, "read it back")
	for _, w := range []string{"swaks ", "--port " + ports["submission"], "--tls ", "--tls-verify", "--tls-ca-path " + shellQuote(ca), "--auth PLAIN", "--auth-user ", "--auth-password "} {
		if !strings.Contains(swaks, w) {
			t.Errorf("swaks command lacks %q: %s", w, swaks)
		}
	}
	for _, w := range []string{"curl ", "--ssl-reqd", "--cacert " + shellQuote(ca), "--user ", "imap://127.0.0.1:" + ports["imap"] + "/INBOX/;UID=1"} {
		if !strings.Contains(curl, w) {
			t.Errorf("curl command lacks %q: %s", w, curl)
		}
	}

	t.Run("swaks and curl", func(t *testing.T) {
		for _, tool := range []string{"swaks", "curl"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("%s is not installed (apt-get install -y swaks curl): the printed commands were checked, not run", tool)
			}
		}
		sh := func(ctx context.Context, cmd string) (string, error) {
			ctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			b, err := exec.CommandContext(ctx, "sh", "-c", cmd).CombinedOutput()
			return string(b), err
		}
		if o, err := sh(ctx, swaks); err != nil {
			t.Fatalf("swaks: %v\n%s", err, o)
		}
		var o string
		var err error
		until := time.Now().Add(30 * time.Second)
		for {
			o, err = sh(ctx, curl)
			if err == nil && strings.Contains(o, "This is a test mailing") || time.Now().After(until) {
				break
			}
			time.Sleep(time.Second)
		}
		if err != nil || !strings.Contains(o, "This is a test mailing") {
			t.Fatalf("curl did not read swaks's message back within 30s: %v\n%s", err, o)
		}
		t.Logf("curl read back:\n%s", o)
		// The CA is what makes the server trusted: without it curl refuses.
		noCA := strings.Replace(curl, "--cacert "+shellQuote(ca)+" ", "", 1)
		if o, err := sh(ctx, noCA); err == nil {
			t.Errorf("curl without the run's CA trusted the server:\n%s", o)
		}
	})

	var downOut syncBuffer
	if err := downCmd(ctx, []string{"--run", id, "--out", out}, &downOut); err != nil {
		t.Fatalf("down: %v\n%s", err, downOut.String())
	}
	if !strings.Contains(downOut.String(), "torn down by its mailchaos up") {
		t.Errorf("down did not go through up: %s", downOut.String())
	}
	select {
	case err := <-done:
		finished = true
		if err != nil {
			t.Fatalf("up: %v\n%s", err, stderr.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("up still holds the stack 2m after down")
	}
	for _, w := range []string{"stop requested (mailchaos down)", "nothing left"} {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("up's stderr lacks %q:\n%s", w, stderr.String())
		}
	}
	if _, err := os.Stat(filepath.Join(out, id, "logs")); err != nil {
		t.Errorf("no logs saved: %v", err)
	}
}

// lineAfter returns the trimmed line after the first line that starts with prefix.
func lineAfter(text, prefix string) string {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, prefix) && i+1 < len(lines) {
			return strings.TrimSpace(lines[i+1])
		}
	}
	return ""
}
