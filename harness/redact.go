package harness

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
)

// Redacted is what stands in a saved log where a secret was.
const Redacted = "[redacted]"

// minSecretLen is the shortest password replaced wherever it appears: a
// shorter fixed one (password_format "%d") is too likely to be part of
// other text, a timestamp or a queue id, to be cut out of every line.
const minSecretLen = 5

// authRE matches an SMTP AUTH or IMAP AUTHENTICATE command with an
// initial response, as a protocol trace (a server's debug log) shows it:
// group 1 keeps the verb and the mechanism, group 2 is the credentials.
// The mechanism must be in capitals, as clients send it: prose such as
// Dovecot's "no auth attempts in 0 secs" is not a command.
var authRE = regexp.MustCompile(`((?i:\bAUTH(?:ENTICATE)?)\s+[A-Z][A-Z0-9_-]*\s+)(\S+)`)

// mechanismRE matches what follows a mechanism in a capability list
// ("250-AUTH PLAIN LOGIN"): another mechanism's name, not credentials,
// which are base64 and all but never without a lower-case letter, + / or =.
var mechanismRE = regexp.MustCompile(`^[A-Z][A-Z0-9_-]*$`)

// base64RE matches an initial response: base64, or "=" for an empty one.
var base64RE = regexp.MustCompile(`^(?:[A-Za-z0-9+/]+={0,2}|=)$`)

// wordRE matches a word of prose ("lost connection after AUTH LOGIN from
// ..."), which base64 credentials all but never are.
var wordRE = regexp.MustCompile(`^[a-z]+$`)

// redactor takes a run's secrets out of container logs before the harness
// saves them (Teardown, Replace, DropVolumes) or quotes them in an error:
// the users' passwords, as they are and base64-encoded as SASL LOGIN and
// PLAIN send them, the run's Secret, and the credentials of any AUTH or
// AUTHENTICATE command a trace shows. A nil redactor (a run that failed
// before its users existed) still redacts AUTH commands.
type redactor struct {
	secrets *strings.Replacer // nil when there are none
}

// newRedactor returns the redactor of users' passwords and the other secrets.
func newRedactor(users []User, secrets ...string) *redactor {
	var pairs []string
	add := func(s string) {
		if len(s) >= minSecretLen {
			pairs = append(pairs, s, Redacted)
		}
	}
	b64 := base64.StdEncoding.EncodeToString
	for _, u := range users {
		add(u.Password)
		if len(u.Password) < minSecretLen {
			continue
		}
		add(b64([]byte(u.Password)))                                           // SASL LOGIN's answer
		add(b64([]byte("\x00" + u.Address + "\x00" + u.Password)))             // SASL PLAIN, no authzid
		add(b64([]byte(u.Address + "\x00" + u.Address + "\x00" + u.Password))) // SASL PLAIN, authzid = authcid
	}
	for _, s := range secrets {
		add(s)
	}
	if len(pairs) == 0 {
		return &redactor{}
	}
	return &redactor{secrets: strings.NewReplacer(pairs...)}
}

// text returns s with every secret replaced by Redacted.
func (r *redactor) text(s string) string {
	if strings.Contains(strings.ToUpper(s), "AUTH") {
		s = authRE.ReplaceAllStringFunc(s, func(m string) string {
			sub := authRE.FindStringSubmatch(m)
			if p := sub[2]; mechanismRE.MatchString(p) || wordRE.MatchString(p) || !base64RE.MatchString(p) {
				return m
			}
			return sub[1] + Redacted
		})
	}
	if r != nil && r.secrets != nil {
		s = r.secrets.Replace(s)
	}
	return s
}

// writer returns a writer that passes what it is given to w a line at a
// time with the secrets replaced, so that a secret split across two writes
// of one line is still found. Flush writes a last line without its end.
func (r *redactor) writer(w io.Writer) *redactWriter { return &redactWriter{r: r, w: w} }

// redactWriter is redactor.writer's writer.
type redactWriter struct {
	r   *redactor
	w   io.Writer
	buf []byte
}

// Write buffers p and writes every complete line, redacted.
func (x *redactWriter) Write(p []byte) (int, error) {
	x.buf = append(x.buf, p...)
	for {
		i := bytes.IndexByte(x.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		if _, err := io.WriteString(x.w, x.r.text(string(x.buf[:i+1]))); err != nil {
			return 0, err
		}
		x.buf = x.buf[i+1:]
	}
}

// Flush writes what is left of the last line, redacted.
func (x *redactWriter) Flush() error {
	if len(x.buf) == 0 {
		return nil
	}
	_, err := io.WriteString(x.w, x.r.text(string(x.buf)))
	x.buf = nil
	return err
}

// copyLogs writes a container's demultiplexed log to w, redacted.
func (r *redactor) copyLogs(ctx context.Context, cli *client.Client, id string, w io.Writer) error {
	rc, err := cli.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return err
	}
	defer rc.Close()
	rw := r.writer(w)
	if _, err := stdcopy.StdCopy(rw, rw, rc); err != nil {
		return err
	}
	return rw.Flush()
}

// saveLog writes a container's log, redacted, to path.
func (r *redactor) saveLog(ctx context.Context, cli *client.Client, id, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := r.copyLogs(ctx, cli, id, f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// saveRetiredLog saves the log of the node's container, which is about to
// be removed while the run goes on (Replace, DropVolumes), to
// <OutDir>/logs/<service>.<n>.log, n counting the service's removed
// containers from 1: the evidence of what the old container did must
// outlive it, and Teardown saves only the containers left, as
// <service>.log. A failure is logged and returned by Teardown, not here:
// losing a log must not stop an upgrade halfway.
func (n *Node) saveRetiredLog(ctx context.Context, id string) {
	e, svc := n.env, n.spec.Name
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	e.logsMu.Lock()
	defer e.logsMu.Unlock() // also keeps two saves of one service from taking one number
	if e.retired == nil {
		e.retired = map[string]int{}
	}
	e.retired[svc]++
	path := filepath.Join(e.opts.OutDir, "logs", fmt.Sprintf("%s.%d.log", svc, e.retired[svc]))
	if err := e.redact.saveLog(ctx, n.cli(), id, path); err != nil {
		_ = os.Remove(path)
		if isNotFound(err) {
			e.retired[svc]-- // already gone: nothing to keep, nothing lost here
			return
		}
		err = fmt.Errorf("save the log of %s's container %.12s before removing it: %w", svc, id, err)
		e.log.Warn("log not saved", "service", svc, "err", err)
		e.logErrs = append(e.logErrs, err)
		return
	}
	e.log.Debug("log saved", "service", svc, "container", id[:min(12, len(id))], "path", path)
}
