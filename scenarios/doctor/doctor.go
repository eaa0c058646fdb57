// Package doctor checks that a running stack keeps the contract each role
// must keep for the scenarios to mean anything: the client endpoints greet
// like SMTP and IMAP servers, submission refuses a password before TLS, an
// unknown recipient is refused at RCPT, a submitted message can be read
// back, the MTAs' quiesce commands run, the edge's control commands drain
// and re-enable a node, and every link can be cut and restored.
//
// It is what `mailchaos doctor` runs once harness.Up has brought a stack
// up. It does not bring stacks up or tear them down, and it judges no
// history: a failing check says the stack is not fit to be tested, not
// that it lost mail.
package doctor

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mailchaos/mailchaos/harness"
	"github.com/mailchaos/mailchaos/scenarios/flow"
)

// Status is a check's outcome.
type Status string

// The outcomes of a check. A warning is a capability the stack lacks on
// purpose (the scenarios that need it skip, visibly); a failure is a
// contract the stack claims and breaks.
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "FAIL"
)

// The names of the checks, as printed and as tests match them.
const (
	CheckSMTPGreeting       = "smtp-greeting"
	CheckSubmissionGreeting = "submission-greeting"
	CheckIMAPGreeting       = "imap-greeting"
	CheckAuthNeedsTLS       = "submission-auth-needs-tls"
	CheckUnknownRecipient   = "unknown-recipient"
	CheckSubmitAndRead      = "submit-and-read"
	CheckQuiesce            = "quiesce"
	CheckEdgeControl        = "edge-control"
	CheckEdgeDrain          = "edge-drain"
	CheckEdgeSessions       = "edge-sessions"
	CheckEdgeEnable         = "edge-enable"
	CheckEdgeServing        = "edge-serving"
	CheckLink               = "link"
)

// Result is one check's outcome, printed as one line.
type Result struct {
	// Check is the check's name (one of the Check* constants).
	Check string
	// Target is what the check looked at when it runs once per thing (a
	// node, a link); "" otherwise.
	Target string
	// Status is ok, warn or FAIL.
	Status Status
	// Detail says what was seen.
	Detail string
	// Fix says what to change in the stack; set on failures and warnings.
	Fix string
}

// Name is the check's name with its target: "link client-smtp".
func (r Result) Name() string {
	if r.Target == "" {
		return r.Check
	}
	return r.Check + " " + r.Target
}

// String is the result's line: status, name, what was seen and, when the
// check did not pass, the fix.
func (r Result) String() string {
	s := fmt.Sprintf("%-4s  %-28s %s", r.Status, r.Name(), r.Detail)
	if r.Fix != "" && r.Status != OK {
		s += " -- fix: " + r.Fix
	}
	return s
}

// Options tune Run. The zero value is usable.
type Options struct {
	// DeliveryBound is how long a submitted message may take to become
	// readable over IMAP (default 30s).
	DeliveryBound time.Duration
	// Catalog is the scenarios a stack is run with; the warning for a
	// missing capability names those that will be skipped for it.
	Catalog []flow.Scenario
}

func (o Options) withDefaults() Options {
	if o.DeliveryBound <= 0 {
		o.DeliveryBound = 30 * time.Second
	}
	return o
}

// Run runs every check against the stack env, in order, hands each result
// to report as soon as it is known (nil: none), and returns them all.
// Checks that break something (drain a node, cut a link) restore it before
// the next check starts, also when they fail. Every check is bounded; Run
// returns early only when ctx ends.
func Run(ctx context.Context, env *harness.Env, o Options, report func(Result)) []Result {
	o = o.withDefaults()
	var out []Result
	add := func(r Result) {
		out = append(out, r)
		if report != nil {
			report(r)
		}
	}
	c := &checker{env: env, o: o, add: add}
	for _, step := range []func(context.Context){
		c.greetings,
		c.authNeedsTLS,
		c.unknownRecipient,
		c.submitAndRead,
		c.quiesce,
		c.edgeControl,
		c.links,
	} {
		if ctx.Err() != nil {
			break
		}
		step(ctx)
	}
	return out
}

// Failed returns the results that failed.
func Failed(results []Result) []Result {
	var out []Result
	for _, r := range results {
		if r.Status == Fail {
			out = append(out, r)
		}
	}
	return out
}

// Summary counts the results: "14 ok, 1 warning, 2 failed (edge-drain, ...)".
func Summary(results []Result) string {
	var ok, warn int
	var failed []string
	for _, r := range results {
		switch r.Status {
		case OK:
			ok++
		case Warn:
			warn++
		case Fail:
			failed = append(failed, r.Name())
		}
	}
	s := fmt.Sprintf("%d ok, %d warning(s), %d failed", ok, warn, len(failed))
	if len(failed) > 0 {
		s += " (" + strings.Join(failed, ", ") + ")"
	}
	return s
}

// checker holds what the checks share.
type checker struct {
	env *harness.Env
	o   Options
	add func(Result)
}

func (c *checker) ok(check, target, format string, args ...any) {
	c.add(Result{Check: check, Target: target, Status: OK, Detail: fmt.Sprintf(format, args...)})
}

func (c *checker) warn(check, target, fix, format string, args ...any) {
	c.add(Result{Check: check, Target: target, Status: Warn, Detail: fmt.Sprintf(format, args...), Fix: fix})
}

func (c *checker) fail(check, target, fix, format string, args ...any) {
	c.add(Result{Check: check, Target: target, Status: Fail, Detail: fmt.Sprintf(format, args...), Fix: fix})
}

// endpoint returns the address of a client endpoint and how it is reached,
// e.g. "127.0.0.1:32771 (link client-smtp to edge:25)"; "" when the
// descriptor does not declare it.
func (c *checker) endpoint(name string) (addr, via string) {
	addr, err := c.env.Endpoint(name)
	if err != nil {
		return "", ""
	}
	d := c.env.Descriptor()
	ln := d.Endpoints[name]
	if l, ok := d.Link(ln); ok {
		return addr, fmt.Sprintf("%s (link %s to %s)", addr, ln, l.Upstream)
	}
	return addr, addr
}

// bounded runs fn with a context that ends after d.
func bounded(ctx context.Context, d time.Duration, fn func(context.Context)) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	fn(ctx)
}
