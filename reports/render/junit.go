package render

import (
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/mailchaos/mailchaos/reports/check"
)

// JUnit XML types, in the dialect Jenkins, GitLab and GitHub reporters read.

// JUnitSuites is the <testsuites> root of junit.xml.
type JUnitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     float64      `xml:"time,attr"`
	Suites   []JUnitSuite `xml:"testsuite"`
}

// JUnitSuite is one scenario.
type JUnitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       float64         `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr,omitempty"`
	Hostname   string          `xml:"hostname,attr,omitempty"`
	Properties []JUnitProperty `xml:"properties>property,omitempty"`
	Cases      []JUnitCase     `xml:"testcase"`
	SystemOut  string          `xml:"system-out,omitempty"`
}

// JUnitProperty is a name/value pair of a suite.
type JUnitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

// JUnitCase is one gate: the scenario as a whole, a check or a threshold.
type JUnitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      float64       `xml:"time,attr"`
	Failure   *JUnitProblem `xml:"failure,omitempty"`
	Error     *JUnitProblem `xml:"error,omitempty"`
	Skipped   *JUnitSkipped `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

// JUnitSkipped marks a case that did not run, with the reason.
type JUnitSkipped struct {
	Message string `xml:"message,attr"`
}

// JUnitProblem is a failure or error: a one-line message and the evidence.
type JUnitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Body    string `xml:",chardata"`
}

// JUnit builds the JUnit document of a run: one suite per scenario with a
// case "verdict" for the scenario as a whole, one per check
// ("check ledger", ...) and one per threshold ("threshold lost == 0"). A
// failed or unknown gate is a <failure> (unknown is never a pass); a
// harness failure is an <error>.
func JUnit(run RunReport) JUnitSuites {
	doc := JUnitSuites{Name: "mailchaos " + run.RunID}
	for _, sc := range run.Scenarios {
		s := junitSuite(run, sc)
		doc.Suites = append(doc.Suites, s)
		doc.Tests += s.Tests
		doc.Failures += s.Failures
		doc.Errors += s.Errors
		doc.Time += s.Time
	}
	return doc
}

func junitSuite(run RunReport, sc Scenario) JUnitSuite {
	s := JUnitSuite{Name: sc.Name, Time: sc.Duration.Seconds(), Hostname: run.Env.Host}
	if !sc.Started.IsZero() {
		s.Timestamp = sc.Started.UTC().Format("2006-01-02T15:04:05")
	}
	s.Properties = append(s.Properties, JUnitProperty{"run_id", run.RunID})
	if v := sc.Verdict; v != nil {
		s.Properties = append(s.Properties, JUnitProperty{"seed", strconv.FormatInt(v.Seed, 10)})
	} else if run.Env.Seed != 0 {
		s.Properties = append(s.Properties, JUnitProperty{"seed", strconv.FormatInt(run.Env.Seed, 10)})
	}
	if run.Env.MailchaosVersion != "" {
		s.Properties = append(s.Properties, JUnitProperty{"mailchaos_version", run.Env.MailchaosVersion})
	}
	if run.Env.Commit != "" {
		s.Properties = append(s.Properties, JUnitProperty{"commit", run.Env.Commit})
	}
	if len(sc.Labels) > 0 {
		s.Properties = append(s.Properties, JUnitProperty{"labels", strings.Join(sc.Labels, ",")})
	}
	class := "mailchaos." + sc.Name

	overall := JUnitCase{Name: "verdict", Classname: class, Time: sc.Duration.Seconds()}
	switch sc.Status() {
	case Error:
		overall.Error = &JUnitProblem{Message: oneLine(sc.Reason()), Type: "harness", Body: sc.Err}
	case Fail, Unknown:
		overall.Failure = &JUnitProblem{Message: oneLine(sc.Reason()), Type: string(sc.Status()), Body: scenarioEvidence(sc.Verdict)}
	case Skipped:
		overall.Skipped = &JUnitSkipped{Message: sc.Skipped}
	}
	if len(sc.Targets) > 0 {
		overall.SystemOut = "targets:\n" + strings.Join(sc.Targets, "\n") + "\n"
	}
	if sc.Verdict != nil {
		overall.SystemOut += verdictSummary(sc.Verdict)
	}
	s.Cases = append(s.Cases, overall)

	if v := sc.Verdict; v != nil {
		for _, c := range v.Checks {
			jc := JUnitCase{Name: "check " + c.Name, Classname: class + ".check"}
			if c.Status != check.Success {
				jc.Failure = &JUnitProblem{Message: oneLine(c.Reason), Type: string(c.Status), Body: checkEvidence(c)}
			}
			s.Cases = append(s.Cases, jc)
		}
		for _, t := range v.Thresholds {
			jc := JUnitCase{Name: "threshold " + t.Expr, Classname: class + ".threshold"}
			if t.Status != check.Success {
				jc.Failure = &JUnitProblem{Message: thresholdLine(t), Type: string(t.Status), Body: thresholdEvidence(v, t)}
			}
			s.Cases = append(s.Cases, jc)
		}
	}
	for _, c := range s.Cases {
		s.Tests++
		if c.Failure != nil {
			s.Failures++
		}
		if c.Error != nil {
			s.Errors++
		}
		if c.Skipped != nil {
			s.Skipped++
		}
	}
	return s
}

// WriteJUnit writes the run's JUnit document to w.
func WriteJUnit(w io.Writer, run RunReport) error {
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(JUnit(run)); err != nil {
		return fmt.Errorf("write junit: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 500 {
		s = s[:497] + "..."
	}
	return s
}

func thresholdLine(t check.ThresholdResult) string {
	if t.Measured == nil {
		return fmt.Sprintf("%s: %s was not measured", t.Expr, t.Metric)
	}
	return fmt.Sprintf("%s: measured %s = %s", t.Expr, t.Metric, fmtMetric(t.Metric, *t.Measured))
}

// fmtMetric formats a metric value; seconds metrics read as durations.
func fmtMetric(name string, v float64) string {
	if strings.HasSuffix(name, "_s") {
		return roundDur(time.Duration(v * float64(time.Second))).String()
	}
	if v == float64(int64(v)) {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}

func verdictSummary(v *check.Verdict) string {
	var b strings.Builder
	l := v.Ledger
	fmt.Fprintf(&b, "run %s scenario %s seed %d: %s\n", v.RunID, v.Scenario, v.Seed, v.Reason)
	fmt.Fprintf(&b, "messages %d, accepted %d, indeterminate %d, failed %d; final read: %v (rounds %d..%d), %d copies\n",
		l.Messages, l.Accepted, l.Indeterminate, l.Failed, l.FinalRead, l.FirstRound, l.LastRound, l.FinalCopies)
	for _, c := range check.Classes {
		if n := l.Counts[c]; n > 0 {
			fmt.Fprintf(&b, "  %s: %d\n", c, n)
		}
	}
	for _, a := range v.Availability {
		fmt.Fprintf(&b, "%s: client-visible downtime longest %s total %s (%d windows); raw error windows longest %s total %s (%d)\n",
			a.Protocol, a.ClientVisible.Longest, a.ClientVisible.Total, a.ClientVisible.Count, a.Raw.Longest, a.Raw.Total, a.Raw.Count)
	}
	if d := v.DeliveryLatency; d.Count > 0 {
		fmt.Fprintf(&b, "delivery latency p50 %s p99 %s max %s (%d deliveries, %d unseen)\n", d.P50, d.P99, d.Max, d.Count, d.Unseen)
	}
	return b.String()
}

// scenarioEvidence lists the failing checks and thresholds with their
// evidence, so the CI page alone says what went wrong.
func scenarioEvidence(v *check.Verdict) string {
	if v == nil {
		return ""
	}
	var b strings.Builder
	for _, c := range v.Checks {
		if c.Status != check.Success {
			fmt.Fprintf(&b, "check %s: %s: %s\n%s", c.Name, c.Status, c.Reason, checkEvidence(c))
		}
	}
	for _, t := range v.Thresholds {
		if t.Status != check.Success {
			fmt.Fprintf(&b, "threshold %s: %s\n", t.Status, thresholdLine(t))
		}
	}
	return b.String()
}

func checkEvidence(c check.Result) string {
	var b strings.Builder
	for _, e := range c.Evidence {
		b.WriteString("  " + evidenceLine(e) + "\n")
		for _, op := range e.Ops {
			b.WriteString("      " + opLine(op) + "\n")
		}
	}
	if c.EvidenceOmitted > 0 {
		fmt.Fprintf(&b, "  ... and %d more\n", c.EvidenceOmitted)
	}
	return b.String()
}

func evidenceLine(e check.Evidence) string {
	parts := []string{e.Problem}
	if e.MsgID != "" {
		parts = append(parts, "msg "+e.MsgID)
	}
	if e.Mailbox != "" {
		parts = append(parts, "mailbox "+e.Mailbox)
	}
	if e.UID != 0 {
		parts = append(parts, fmt.Sprintf("uid %d", e.UID))
	}
	if e.At != 0 {
		parts = append(parts, "at "+roundDur(e.At.Duration()).String())
	}
	s := strings.Join(parts, ", ")
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func opLine(op check.OpRef) string {
	s := fmt.Sprintf("history line %d: %s", op.Line, op.Type)
	for _, f := range []string{string(op.Kind), op.Client, string(op.Scope)} {
		if f != "" {
			s += " " + f
		}
	}
	if op.Target != "" {
		s += " of replica " + op.Target
	}
	if op.Attempt != 0 {
		s += fmt.Sprintf(" attempt %d", op.Attempt)
	}
	if op.Outcome != "" {
		s += " " + string(op.Outcome)
	}
	if op.Class != "" {
		s += " (" + op.Class + ")"
	}
	if op.Stage != "" {
		s += " at stage " + op.Stage
	}
	if op.Mailbox != "" {
		s += " " + op.Mailbox
	}
	if op.UID != 0 {
		s += fmt.Sprintf(" uid %d", op.UID)
	}
	s += fmt.Sprintf(" [%s .. %s]", roundDur(op.Start.Duration()), roundDur(op.End.Duration()))
	return s
}

// thresholdEvidence gives a failing threshold the evidence of the check its
// metric comes from, and the downtime windows for a downtime metric.
func thresholdEvidence(v *check.Verdict, t check.ThresholdResult) string {
	var b strings.Builder
	b.WriteString(thresholdLine(t) + "\n")
	if strings.Contains(t.Metric, "downtime") || strings.Contains(t.Metric, "windows") {
		for _, a := range v.Availability {
			ws := a.ClientVisible
			if strings.Contains(t.Metric, "raw_error") {
				ws = a.Raw
			}
			for _, w := range ws.Windows {
				fmt.Fprintf(&b, "  %s window %s..%s (%s), %d failures at %s (%s)%s\n", a.Protocol,
					roundDur(w.Start.Duration()), roundDur(w.End.Duration()), roundDur(w.Duration), w.Failures,
					strings.Join(w.Stages, ","), strings.Join(w.Classes, ","), faultNames(v, w.Faults))
			}
		}
		return b.String()
	}
	name := check.CheckLedger
	switch {
	case strings.HasPrefix(t.Metric, "replica"):
		name = check.CheckReplicas
	case strings.HasPrefix(t.Metric, "uid") || strings.HasPrefix(t.Metric, "reappeared") || strings.HasPrefix(t.Metric, "flags") || strings.HasPrefix(t.Metric, "imap_violations"):
		name = check.CheckIMAP
	case strings.Contains(t.Metric, "latency") || strings.Contains(t.Metric, "drain"):
		return b.String()
	}
	for _, c := range v.Checks {
		if c.Name == name {
			b.WriteString(checkEvidence(c))
		}
	}
	return b.String()
}

func faultNames(v *check.Verdict, idx []int) string {
	if len(idx) == 0 {
		return ""
	}
	var names []string
	for _, i := range idx {
		if i >= 0 && i < len(v.Faults) {
			f := v.Faults[i]
			names = append(names, fmt.Sprintf("F%d %s %s", i+1, f.Name, f.Target))
		}
	}
	return " during " + strings.Join(names, "; ")
}
