// Package render turns the verdicts of a run into the reports people and CI
// read: junit.xml (a test case per scenario and per check and threshold),
// verdict.json, and a self-contained index.html with inline SVG charts drawn
// from the history. Write puts them in out/<run id>/ with the evidence
// (MANIFEST.sha256, optional signature, bundle.tar.gz; see reports/evidence)
// and points out/latest at the run.
//
// render judges nothing: the verdict comes from reports/check, and the
// charts only draw what the history says. It reads the history format
// (history) and never imports the harness, faults or loadgen.
package render

import (
	"crypto/ed25519"
	"time"

	"github.com/mailchaos/mailchaos/reports/check"
)

// ReportVersion is the version of verdict.json's top-level form (Summary).
const ReportVersion = 1

// Status of a scenario or a run in a report: the check statuses plus Error.
type Status string

// The report statuses. Error means the harness itself failed (exit code 2):
// the system under test was not judged.
const (
	Pass    Status = "pass"
	Fail    Status = "fail"
	Unknown Status = "unknown"
	Error   Status = "error"
	// Skipped is a scenario the stack could not serve: it proves nothing,
	// so it is never a pass; a run of only skipped scenarios is an error.
	Skipped Status = "skipped"
)

// RunReport is everything Write needs for one run.
type RunReport struct {
	RunID     string
	Title     string // optional headline, e.g. "nightly" or "rehearsal v1 → v2"
	Env       Environment
	Scenarios []Scenario
	// Generated is when the report was made; zero means now.
	Generated time.Time
	// SignKey, if set, signs MANIFEST.sha256 (MANIFEST.sha256.sig).
	SignKey ed25519.PrivateKey
}

// Scenario is one scenario of a run and its outcome.
type Scenario struct {
	Name string
	// History is the path of the scenario's history file. Write copies it
	// into the run folder unless it is already inside it: history.jsonl for
	// a run of one scenario, <name>/history.jsonl otherwise.
	History string
	// Verdict is the checkers' verdict; nil when the scenario could not be
	// judged (see Err).
	Verdict *check.Verdict
	// Err is the harness failure that stopped the scenario, if any: a
	// scenario with Err has Status Error whatever its verdict says.
	Err string
	// Started and Duration are the scenario's wall-clock start and length.
	Started  time.Time
	Duration time.Duration
	// Labels are the scenario's Ginkgo labels (nightly, smoke, upgrade, dr).
	Labels []string
	// Skipped, when set, says why the stack could not serve the scenario:
	// it did not run (no history, no verdict).
	Skipped string
	// Targets says what the scenario's fault selectors resolved to in this
	// stack, one line each (the primary region first).
	Targets []string
}

// Environment describes where and with what a run happened, as the caller
// (the scenarios package) found it. Every field is optional; the report
// shows what is set.
type Environment struct {
	MailchaosVersion string  `json:"mailchaos_version,omitempty"`
	Commit           string  `json:"commit,omitempty"`
	Host             string  `json:"host,omitempty"` // hostname
	OS               string  `json:"os,omitempty"`   // e.g. "linux/amd64 Debian 12"
	GoVersion        string  `json:"go_version,omitempty"`
	Docker           string  `json:"docker,omitempty"` // Docker engine version
	Seed             int64   `json:"seed"`
	Command          string  `json:"command,omitempty"` // the command line of the run
	Stack            string  `json:"stack,omitempty"`   // the stack descriptor's path or name
	Images           []Image `json:"images,omitempty"`
	// Software lists the versions read from the running containers, e.g.
	// {"postfix (mta-a)", "3.7.11"}.
	Software []KV `json:"software,omitempty"`
	// Extra is anything else worth showing, in order.
	Extra []KV `json:"extra,omitempty"`
}

// Image is one service's container image.
type Image struct {
	Service string `json:"service"`
	Ref     string `json:"ref"`          // e.g. mailchaos/store:v1
	ID      string `json:"id,omitempty"` // e.g. sha256:…
}

// KV is a name and a value, shown in order.
type KV struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Status returns the scenario's report status.
func (s Scenario) Status() Status {
	switch {
	case s.Err != "":
		return Error
	case s.Skipped != "":
		return Skipped
	case s.Verdict == nil:
		return Unknown
	}
	return statusOf(s.Verdict.Status)
}

// Reason returns the one line that explains the scenario's status.
func (s Scenario) Reason() string {
	switch {
	case s.Err != "":
		return "harness error: " + s.Err
	case s.Skipped != "":
		return "skipped: " + s.Skipped
	case s.Verdict == nil:
		return "not judged: no verdict"
	}
	return s.Verdict.Reason
}

func statusOf(st check.Status) Status {
	switch st {
	case check.Success:
		return Pass
	case check.Failure:
		return Fail
	}
	return Unknown
}

// Status returns the run's status: Fail if any scenario failed a gate, else
// Error if the harness failed in any, else Unknown if any could not be
// proven, else Pass. A run with no scenarios is Unknown.
func (r RunReport) Status() Status {
	if len(r.Scenarios) == 0 {
		return Unknown
	}
	seen := map[Status]bool{}
	for _, s := range r.Scenarios {
		seen[s.Status()] = true
	}
	if len(seen) == 1 && seen[Skipped] {
		return Error // nothing ran: the run proved nothing
	}
	for _, st := range []Status{Fail, Error, Unknown} {
		if seen[st] {
			return st
		}
	}
	return Pass
}

// ExitCode maps the run's status to the documented exit codes: 0 all gates
// passed, 1 a gate failed or could not be proven, 2 the harness failed.
func (r RunReport) ExitCode() int {
	switch r.Status() {
	case Pass:
		return 0
	case Error:
		return 2
	}
	return 1
}
