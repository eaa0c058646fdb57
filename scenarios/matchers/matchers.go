// Package matchers holds the Gomega matchers the scenarios assert a
// check.Verdict with. Their failure messages carry the evidence a person
// needs to act: the offending message IDs with their operations, the
// downtime windows with the faults that overlapped them, the thresholds
// with their measured values. A property the verdict could not prove
// (status unknown) fails: it is never a pass.
package matchers

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/mailchaos/mailchaos/history"
	"github.com/mailchaos/mailchaos/reports/check"
	"github.com/onsi/gomega/types"
)

// verdictOf accepts a check.Verdict or a non-nil *check.Verdict.
func verdictOf(actual any) (*check.Verdict, error) {
	switch v := actual.(type) {
	case check.Verdict:
		return &v, nil
	case *check.Verdict:
		if v == nil {
			return nil, fmt.Errorf("expected a check.Verdict, got a nil *check.Verdict")
		}
		return v, nil
	}
	return nil, fmt.Errorf("expected a check.Verdict, got %T", actual)
}

func result(v *check.Verdict, name string) (check.Result, bool) {
	for _, r := range v.Checks {
		if r.Name == name {
			return r, true
		}
	}
	return check.Result{}, false
}

// verdictMatcher is a matcher whose outcome and message come from one
// function over the verdict.
type verdictMatcher struct {
	what string // "have no lost messages", ...
	eval func(v *check.Verdict) (ok bool, evidence string)
	ev   string
}

var _ types.GomegaMatcher = (*verdictMatcher)(nil)

func (m *verdictMatcher) Match(actual any) (bool, error) {
	v, err := verdictOf(actual)
	if err != nil {
		return false, err
	}
	ok, ev := m.eval(v)
	m.ev = ev
	return ok, nil
}

func (m *verdictMatcher) FailureMessage(actual any) string {
	return fmt.Sprintf("Expected %s to %s, but:\n%s", describe(actual), m.what, m.ev)
}

func (m *verdictMatcher) NegatedFailureMessage(actual any) string {
	return fmt.Sprintf("Expected %s not to %s, but it does", describe(actual), m.what)
}

func describe(actual any) string {
	v, err := verdictOf(actual)
	if err != nil {
		return fmt.Sprintf("%T", actual)
	}
	return fmt.Sprintf("the verdict of scenario %q (run %s, seed %d)", v.Scenario, v.RunID, v.Seed)
}

// HaveNoLostMessages succeeds when the ledger check passed: every accepted
// message is in the final read exactly once and byte-identical, and nothing
// unexpected is there (duplicated, corrupted, unexpected and late
// deliveries fail it too, under the verdict's policy). Without a complete
// final read the ledger is unknown and the matcher fails.
func HaveNoLostMessages() types.GomegaMatcher {
	return &verdictMatcher{what: "have no lost, duplicated or corrupted messages", eval: func(v *check.Verdict) (bool, string) {
		return checkResult(v, check.CheckLedger, ledgerFacts)
	}}
}

// KeepIMAPInvariants succeeds when the IMAP invariants held: UIDVALIDITY
// stable, UIDs increasing and never reused, no expunged message back, flags
// kept.
func KeepIMAPInvariants() types.GomegaMatcher {
	return &verdictMatcher{what: "keep the IMAP invariants", eval: func(v *check.Verdict) (bool, string) {
		return checkResult(v, check.CheckIMAP, imapFacts)
	}}
}

// HaveCompleteReplicas succeeds when every mailbox replica the run read
// directly holds every message the final read found, byte-identical (the
// replicas check passed), or when the run read no replica (a stack that
// declares none has no replicas check). A replica read that could not be
// judged (no replica-read-done, or no final read to compare with) fails.
func HaveCompleteReplicas() types.GomegaMatcher {
	return &verdictMatcher{what: "keep every mailbox replica complete", eval: func(v *check.Verdict) (bool, string) {
		r, ok := result(v, check.CheckReplicas)
		if !ok || r.Status == check.Success {
			return true, ""
		}
		var b strings.Builder
		if r.Status == check.Unknown {
			fmt.Fprintf(&b, "  the replicas could not be judged: %s\n", r.Reason)
		} else {
			fmt.Fprintf(&b, "  %s %s: %s\n", check.CheckReplicas, r.Status, r.Reason)
		}
		b.WriteString(replicaFacts(v))
		b.WriteString(formatEvidence(v, r))
		return false, b.String()
	}}
}

// HaveNoClientVisibleDowntime succeeds when no protocol has a
// client-visible downtime window (an operation that failed after the
// client's retry budget), whatever the verdict's policy allows. Raw error
// windows are allowed: a retry that hides them is what clients do.
func HaveNoClientVisibleDowntime() types.GomegaMatcher {
	return &verdictMatcher{what: "have no client-visible downtime", eval: func(v *check.Verdict) (bool, string) {
		r, ok := result(v, check.CheckAvailability)
		if !ok {
			return false, "  the verdict has no availability check"
		}
		if r.Status == check.Unknown {
			return false, fmt.Sprintf("  availability is unknown: %s", r.Reason)
		}
		var b strings.Builder
		bad := false
		for _, pa := range v.Availability {
			cv := pa.ClientVisible
			if cv.Count == 0 {
				continue
			}
			bad = true
			fmt.Fprintf(&b, "  %s: %d client-visible window(s), longest %s, total %s (%d of %d ops failed)\n",
				pa.Protocol, cv.Count, round(cv.Longest), round(cv.Total), pa.FailedOps, pa.Ops)
			for _, w := range cv.Windows {
				b.WriteString(formatWindow(v, w))
			}
			if cv.Unattributed > 0 {
				fmt.Fprintf(&b, "    %d window(s) overlap no fault\n", cv.Unattributed)
			}
		}
		if !bad && r.Status == check.Failure {
			// The checker failed availability for a reason the windows do not show.
			return false, "  " + r.Reason + "\n" + formatEvidence(v, r)
		}
		return !bad, b.String()
	}}
}

// MeetThresholds succeeds when every threshold of the verdict's policy
// passed. A threshold whose metric was not measured is unknown and fails;
// a verdict with no thresholds at all fails too (a gate with nothing to
// check is a mistake in the scenario, not a pass).
func MeetThresholds() types.GomegaMatcher {
	return &verdictMatcher{what: "meet its thresholds", eval: func(v *check.Verdict) (bool, string) {
		if len(v.Thresholds) == 0 {
			return false, "  no threshold was evaluated (the scenario's policy has none)"
		}
		var b strings.Builder
		ok := true
		for _, t := range v.Thresholds {
			if t.Status == check.Success {
				continue
			}
			ok = false
			measured := "not measured"
			if t.Measured != nil {
				measured = fmt.Sprintf("measured %s", formatMetric(t.Metric, *t.Measured))
			}
			fmt.Fprintf(&b, "  %s: %s (%s)\n", t.Expr, t.Status, measured)
		}
		return ok, b.String()
	}}
}

func checkResult(v *check.Verdict, name string, facts func(*check.Verdict) string) (bool, string) {
	r, ok := result(v, name)
	if !ok {
		return false, fmt.Sprintf("  the verdict has no %s check", name)
	}
	if r.Status == check.Success {
		return true, ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "  %s %s: %s\n", name, r.Status, r.Reason)
	b.WriteString(facts(v))
	b.WriteString(formatEvidence(v, r))
	return false, b.String()
}

func ledgerFacts(v *check.Verdict) string {
	l := v.Ledger
	if !l.FinalRead {
		return "  no complete final read: loss cannot be judged\n"
	}
	var counts []string
	for _, c := range check.Classes {
		if n := l.Counts[c]; n > 0 && c != check.ClassOK {
			counts = append(counts, fmt.Sprintf("%s=%d", c, n))
		}
	}
	return fmt.Sprintf("  %d messages sent, %d accepted, %d indeterminate, %d failed; final read rounds %d..%d found %d copies; %s\n",
		l.Messages, l.Accepted, l.Indeterminate, l.Failed, l.FirstRound, l.LastRound, l.FinalCopies, strings.Join(counts, " "))
}

func imapFacts(v *check.Verdict) string {
	i := v.IMAP
	var b strings.Builder
	fmt.Fprintf(&b, "  uidvalidity changes=%d uid reused=%d uid order=%d reappeared=%d flags lost=%d\n",
		len(i.UIDValidityChanges), i.UIDReused, i.UIDOrder, i.Reappeared, i.FlagsLost)
	for _, c := range i.UIDValidityChanges {
		fmt.Fprintf(&b, "    %s: UIDVALIDITY %d -> %d at %s%s\n", c.Mailbox, c.From, c.To, at(c.At), faultsAt(v, c.At, c.At))
	}
	return b.String()
}

func replicaFacts(v *check.Verdict) string {
	var b strings.Builder
	for _, r := range v.Replicas {
		if !r.Complete {
			fmt.Fprintf(&b, "  replica %s: read incomplete (no replica-read-done)\n", r.Name)
			continue
		}
		fmt.Fprintf(&b, "  replica %s: %d copies read; missing=%d corrupted=%d extra=%d\n", r.Name, r.Copies, r.Missing, r.Corrupted, r.Extra)
	}
	return b.String()
}

func formatEvidence(v *check.Verdict, r check.Result) string {
	var b strings.Builder
	for _, e := range r.Evidence {
		fmt.Fprintf(&b, "    %s", e.Problem)
		if e.MsgID != "" {
			fmt.Fprintf(&b, " %s", e.MsgID)
		}
		if e.Mailbox != "" {
			fmt.Fprintf(&b, " in %s", e.Mailbox)
		}
		if e.UID != 0 {
			fmt.Fprintf(&b, " uid %d", e.UID)
		}
		fmt.Fprintf(&b, ": %s", e.Detail)
		from, to, ok := evidenceSpan(e)
		if ok {
			b.WriteString(faultsAt(v, from, to))
		}
		b.WriteString("\n")
		for _, op := range e.Ops {
			fmt.Fprintf(&b, "      line %d: %s %s", op.Line, op.Type, op.Kind)
			if op.Client != "" {
				fmt.Fprintf(&b, " by %s", op.Client)
			}
			if op.Target != "" {
				fmt.Fprintf(&b, " of replica %s", op.Target)
			}
			if op.Scope != "" {
				fmt.Fprintf(&b, " (%s %d)", op.Scope, op.Attempt)
			}
			if op.Outcome != "" {
				fmt.Fprintf(&b, " %s", op.Outcome)
			}
			if op.Class != "" {
				fmt.Fprintf(&b, " %s", op.Class)
			}
			if op.Stage != "" {
				fmt.Fprintf(&b, " at %s", op.Stage)
			}
			if op.Mailbox != "" {
				fmt.Fprintf(&b, " %s uid %d", op.Mailbox, op.UID)
			}
			fmt.Fprintf(&b, " [%s..%s]\n", at(op.Start), at(max(op.End, op.Start)))
		}
	}
	if r.EvidenceOmitted > 0 {
		fmt.Fprintf(&b, "    ... and %d more\n", r.EvidenceOmitted)
	}
	return b.String()
}

// evidenceSpan is the interval an evidence item is about: its sending
// operations if it has any (a lost message was lost around its send), else
// its instant.
func evidenceSpan(e check.Evidence) (from, to history.Offset, ok bool) {
	for _, op := range e.Ops {
		if op.Type != history.TypeOp {
			continue
		}
		end := max(op.End, op.Start)
		if !ok || op.Start < from {
			from = op.Start
		}
		if !ok || end > to {
			to = end
		}
		ok = true
	}
	if !ok && e.At != 0 {
		return e.At, e.At, true
	}
	return from, to, ok
}

func formatWindow(v *check.Verdict, w check.Window) string {
	var b strings.Builder
	fmt.Fprintf(&b, "    window %s..%s (%s): %d failures at %s, classes %s",
		at(w.Start), at(w.End), round(w.Duration), w.Failures, strings.Join(w.Stages, ","), strings.Join(w.Classes, ","))
	if w.Open {
		b.WriteString(", never closed by a success")
	}
	var names []string
	for _, i := range w.Faults {
		if i >= 0 && i < len(v.Faults) {
			names = append(names, faultName(v.Faults[i]))
		}
	}
	if len(names) > 0 {
		fmt.Fprintf(&b, "; overlapping fault %s", strings.Join(names, ", "))
	} else {
		b.WriteString("; overlapping no fault")
	}
	b.WriteString("\n")
	return b.String()
}

// faultsAt names the faults whose intervals overlap [from, to].
func faultsAt(v *check.Verdict, from, to history.Offset) string {
	var names []string
	for _, f := range v.Faults {
		if f.Start <= to && from <= f.End {
			names = append(names, faultName(f))
		}
	}
	if len(names) == 0 {
		return ""
	}
	sort.Strings(names)
	return "; during fault " + strings.Join(names, ", ")
}

func faultName(f check.Fault) string {
	s := fmt.Sprintf("%s:%s [%s..%s]", f.Name, f.Target, at(f.Start), at(f.End))
	if !f.Healed {
		s += " (never healed)"
	}
	return s
}

func at(o history.Offset) string { return "t+" + round(o.Duration()).String() }

func round(d time.Duration) time.Duration {
	if d > 10*time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

func formatMetric(name string, v float64) string {
	if strings.HasSuffix(name, "_s") {
		return round(time.Duration(v * float64(time.Second))).String()
	}
	return fmt.Sprintf("%g", v)
}
