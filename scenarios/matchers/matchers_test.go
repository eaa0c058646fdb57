package matchers

import (
	"strings"
	"testing"
	"time"

	"github.com/mailchaos/mailchaos/history"
	"github.com/mailchaos/mailchaos/reports/check"
	"github.com/onsi/gomega/types"
)

const sec = history.Offset(time.Second)

// passing is a verdict every matcher accepts.
func passing() check.Verdict {
	return check.Verdict{
		RunID: "r1", Scenario: "region-loss", Seed: 42, Status: check.Success,
		Checks: []check.Result{
			{Name: check.CheckLedger, Status: check.Success, Reason: "all 10 accepted messages delivered once"},
			{Name: check.CheckIMAP, Status: check.Success},
			{Name: check.CheckAvailability, Status: check.Success},
		},
		Ledger: check.LedgerSummary{Messages: 10, Accepted: 10, FinalRead: true, FirstRound: 1, LastRound: 1, FinalCopies: 10},
		Faults: []check.Fault{{Index: 0, Name: "region-loss", Target: "a", Start: 10 * sec, End: 40 * sec, Healed: true}},
		Availability: []check.ProtocolAvailability{
			{Protocol: "smtp", Ops: 10, Raw: check.Windows{Count: 1, Longest: time.Second}},
			{Protocol: "imap", Ops: 30},
		},
		Thresholds: []check.ThresholdResult{
			{Threshold: check.Threshold{Expr: "lost == 0", Metric: "lost", Op: "==", Value: 0}, Status: check.Success, Measured: ptr(0)},
		},
	}
}

func ptr(f float64) *float64 { return &f }

func TestMatchersPassAGoodVerdict(t *testing.T) {
	v := passing()
	for name, m := range map[string]types.GomegaMatcher{
		"lost": HaveNoLostMessages(), "imap": KeepIMAPInvariants(),
		"downtime": HaveNoClientVisibleDowntime(), "thresholds": MeetThresholds(),
		"replicas": HaveCompleteReplicas(),
	} {
		for _, actual := range []any{v, &v} {
			ok, err := m.Match(actual)
			if err != nil || !ok {
				t.Errorf("%s: Match(%T) = %v, %v; message:\n%s", name, actual, ok, err, m.FailureMessage(actual))
			}
		}
	}
}

func TestMatchersRejectWhatIsNotAVerdict(t *testing.T) {
	var nilV *check.Verdict
	for _, actual := range []any{nil, "verdict", nilV} {
		if _, err := HaveNoLostMessages().Match(actual); err == nil {
			t.Errorf("Match(%#v): no error", actual)
		}
	}
}

// Each case is a verdict that must fail, and the facts its failure message
// must carry.
func TestFailureMessagesCarryTheEvidence(t *testing.T) {
	cases := []struct {
		name    string
		matcher types.GomegaMatcher
		mutate  func(v *check.Verdict)
		want    []string
	}{
		{
			name:    "lost message during a fault",
			matcher: HaveNoLostMessages(),
			mutate: func(v *check.Verdict) {
				v.Checks[0] = check.Result{Name: check.CheckLedger, Status: check.Failure, Reason: "1 accepted message lost",
					Evidence: []check.Evidence{{
						Problem: "lost", MsgID: "r1.smtp-3.17", Mailbox: "user0007@example.test",
						Detail: "accepted by smtp-3 at 12.3s, 0 copies in final read round 2",
						Ops: []check.OpRef{{Line: 88, Type: history.TypeOp, Kind: history.KindSMTPSend, Client: "smtp-3",
							Scope: history.ScopeOp, Attempt: 1, Outcome: history.OK, Class: "smtp:250 2.0.0", Start: 12 * sec, End: 12*sec + sec/3}},
					}},
					EvidenceOmitted: 4,
				}
				v.Ledger.Counts = map[check.Class]int64{check.ClassOK: 9, check.ClassLost: 5}
			},
			want: []string{"ledger failure: 1 accepted message lost", "lost r1.smtp-3.17 in user0007@example.test",
				"line 88: op smtp.send by smtp-3", "during fault region-loss:a [t+10s..t+40s]", "lost=5", "and 4 more",
				`scenario "region-loss" (run r1, seed 42)`},
		},
		{
			name:    "no final read",
			matcher: HaveNoLostMessages(),
			mutate: func(v *check.Verdict) {
				v.Checks[0] = check.Result{Name: check.CheckLedger, Status: check.Unknown, Reason: "no complete final read"}
				v.Ledger.FinalRead = false
			},
			want: []string{"ledger unknown: no complete final read", "loss cannot be judged"},
		},
		{
			name:    "client-visible window overlapping a fault",
			matcher: HaveNoClientVisibleDowntime(),
			mutate: func(v *check.Verdict) {
				v.Availability[0].FailedOps = 3
				v.Availability[0].ClientVisible = check.Windows{Count: 1, Longest: 4200 * time.Millisecond, Total: 4200 * time.Millisecond,
					Windows: []check.Window{{Start: 11 * sec, End: 15*sec + sec/5, Duration: 4200 * time.Millisecond, Failures: 3,
						Stages: []string{"connect"}, Classes: []string{"conn-refused"}, Faults: []int{0}}}}
				// A policy that allows downtime must not hide it from this matcher.
				v.Policy.AllowClientDowntime = true
			},
			want: []string{"smtp: 1 client-visible window(s), longest 4.2s", "window t+11s..t+15.2s (4.2s): 3 failures at connect, classes conn-refused",
				"overlapping fault region-loss:a [t+10s..t+40s]"},
		},
		{
			name:    "availability unknown",
			matcher: HaveNoClientVisibleDowntime(),
			mutate: func(v *check.Verdict) {
				v.Checks[2] = check.Result{Name: check.CheckAvailability, Status: check.Unknown, Reason: "no operations recorded"}
			},
			want: []string{"availability is unknown: no operations recorded"},
		},
		{
			name:    "threshold missed and one not measured",
			matcher: MeetThresholds(),
			mutate: func(v *check.Verdict) {
				v.Thresholds = append(v.Thresholds,
					check.ThresholdResult{Threshold: check.Threshold{Expr: "delivery_latency_p99 < 30s", Metric: "delivery_latency_p99_s", Op: "<", Value: 30}, Status: check.Failure, Measured: ptr(41.5)},
					check.ThresholdResult{Threshold: check.Threshold{Expr: "queue_drain_max_s < 60", Metric: "queue_drain_max_s", Op: "<", Value: 60}, Status: check.Unknown})
			},
			want: []string{"delivery_latency_p99 < 30s: failure (measured 41.5s)", "queue_drain_max_s < 60: unknown (not measured)"},
		},
		{
			name:    "no thresholds at all",
			matcher: MeetThresholds(),
			mutate:  func(v *check.Verdict) { v.Thresholds = nil },
			want:    []string{"no threshold was evaluated"},
		},
		{
			name:    "replica missing messages",
			matcher: HaveCompleteReplicas(),
			mutate: func(v *check.Verdict) {
				v.Checks = append(v.Checks, check.Result{Name: check.CheckReplicas, Status: check.Failure, Reason: "store-b lacks 41 of 700 messages the final read found",
					Evidence: []check.Evidence{{
						Problem: "replica-missing", MsgID: "r1.smtp-3.17", Mailbox: "user0007@example.test/INBOX",
						Detail: "replica store-b has no copy (its read 1 completed at line 2100); final read round 1 found it at UID 12 (line 1210)",
						Ops: []check.OpRef{
							{Line: 88, Type: history.TypeOp, Kind: history.KindSMTPSend, Client: "smtp-3", Scope: history.ScopeOp, Attempt: 1, Outcome: history.OK, Start: 12 * sec, End: 12*sec + sec/3},
							{Line: 1210, Type: history.TypeFinal, Client: "final-2", Attempt: 1, Mailbox: "user0007@example.test/INBOX", UID: 12, Start: 70 * sec},
							{Line: 1650, Type: history.TypeFinal, Client: "final-4", Target: "store-a", Attempt: 1, Mailbox: "user0007@example.test/INBOX", UID: 12, Start: 75 * sec},
						},
					}},
					EvidenceOmitted: 40,
				})
				v.Replicas = []check.ReplicaSummary{
					{Name: "store-a", Complete: true, Attempt: 1, Copies: 700},
					{Name: "store-b", Complete: true, Attempt: 1, Copies: 659, Missing: 41},
				}
			},
			want: []string{"to keep every mailbox replica complete", "replicas failure: store-b lacks 41 of 700 messages the final read found",
				"replica store-b: 659 copies read; missing=41 corrupted=0", "replica store-a: 700 copies read; missing=0",
				"replica-missing r1.smtp-3.17 in user0007@example.test/INBOX: replica store-b has no copy", "during fault region-loss:a",
				"line 88: op smtp.send by smtp-3", "line 1210: final  by final-2 user0007@example.test/INBOX uid 12", "line 1650: final  by final-4 of replica store-a", "and 40 more"},
		},
		{
			name:    "replica with a corrupted copy",
			matcher: HaveCompleteReplicas(),
			mutate: func(v *check.Verdict) {
				v.Checks = append(v.Checks, check.Result{Name: check.CheckReplicas, Status: check.Failure, Reason: "store-b holds 1 with a different body hash",
					Evidence: []check.Evidence{{Problem: "replica-corrupted", MsgID: "r1.smtp-1.4", Mailbox: "user0001@example.test/INBOX", UID: 3,
						Detail: "replica store-b holds a copy at UID 3 (line 2044) whose body hash differs from the one sent"}}})
				v.Replicas = []check.ReplicaSummary{{Name: "store-b", Complete: true, Attempt: 1, Copies: 700, Corrupted: 1}}
			},
			want: []string{"store-b holds 1 with a different body hash", "replica-corrupted r1.smtp-1.4 in user0001@example.test/INBOX uid 3", "line 2044", "corrupted=1"},
		},
		{
			name:    "replica read incomplete",
			matcher: HaveCompleteReplicas(),
			mutate: func(v *check.Verdict) {
				v.Checks = append(v.Checks, check.Result{Name: check.CheckReplicas, Status: check.Unknown, Reason: "replica read incomplete: store-b not judged (no replica-read-done)"})
				v.Replicas = []check.ReplicaSummary{{Name: "store-a", Complete: true, Attempt: 1, Copies: 700}, {Name: "store-b"}}
			},
			want: []string{"the replicas could not be judged: replica read incomplete: store-b not judged", "replica store-b: read incomplete"},
		},
		{
			name:    "replicas without a final read",
			matcher: HaveCompleteReplicas(),
			mutate: func(v *check.Verdict) {
				v.Checks = append(v.Checks, check.Result{Name: check.CheckReplicas, Status: check.Unknown, Reason: "no complete final read (no final-read-done event): nothing to compare 2 replica(s) with"})
			},
			want: []string{"the replicas could not be judged: no complete final read"},
		},
		{
			name:    "uidvalidity changed during a fault",
			matcher: KeepIMAPInvariants(),
			mutate: func(v *check.Verdict) {
				v.Checks[1] = check.Result{Name: check.CheckIMAP, Status: check.Failure, Reason: "UIDVALIDITY changed in 1 mailbox"}
				v.IMAP.UIDValidityChanges = []check.UIDValidityChange{{Mailbox: "user0002@example.test/INBOX", From: 7, To: 9, At: 20 * sec}}
			},
			want: []string{"UIDVALIDITY 7 -> 9 at t+20s; during fault region-loss:a"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := passing()
			c.mutate(&v)
			ok, err := c.matcher.Match(v)
			if err != nil || ok {
				t.Fatalf("Match = %v, %v; want a failure", ok, err)
			}
			msg := c.matcher.FailureMessage(v)
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("failure message lacks %q:\n%s", w, msg)
				}
			}
		})
	}
}

// A run that read no replica has nothing to check there; a replicas check
// passes only on success.
func TestHaveCompleteReplicas(t *testing.T) {
	for _, c := range []struct {
		name   string
		status check.Status // "": no replicas check
		want   bool
	}{
		{"no replicas read", "", true},
		{"every replica complete", check.Success, true},
		{"a replica lacks messages", check.Failure, false},
		{"a replica read incomplete", check.Unknown, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := passing()
			if c.status != "" {
				v.Checks = append(v.Checks, check.Result{Name: check.CheckReplicas, Status: c.status, Reason: "2 replicas hold every message the final read found"})
			}
			m := HaveCompleteReplicas()
			ok, err := m.Match(&v)
			if err != nil || ok != c.want {
				t.Fatalf("Match = %v, %v; want %v", ok, err, c.want)
			}
			if !ok && !strings.Contains(m.FailureMessage(&v), "Expected the verdict of scenario") {
				t.Errorf("failure message %q", m.FailureMessage(&v))
			}
			if ok && !strings.Contains(m.NegatedFailureMessage(&v), "not to keep every mailbox replica complete") {
				t.Errorf("negated message %q", m.NegatedFailureMessage(&v))
			}
		})
	}
}
