package check

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/mailchaos/mailchaos/history"
)

const (
	ok    = history.OK
	fail  = history.Fail
	indet = history.Indeterminate
)

func TestLedgerClasses(t *testing.T) {
	corrupt := fin("m1", inbox1, 1, 1)
	corrupt.BodySHA256 = "something-else"
	foreign := fin("", inbox1, 9, 1)
	upper := send("m1", ok, 0, 10)
	upper.BodySHA256 = strings.Repeat("AB", 32)
	lower := fin("m1", inbox1, 1, 1)
	lower.BodySHA256 = strings.Repeat("ab", 32)
	expunge := imapOp(history.KindIMAPExpunge, ok, 50, 60, "expunge")
	expunge.UID, expunge.UIDValidity = 1, 1

	tests := []struct {
		name   string
		recs   []history.Record
		policy Policy
		want   map[Class]int64
		status Status
	}{
		{"ok", mkHist(send("m1", ok, 0, 10), fin("m1", inbox1, 1, 1), done(1)),
			Policy{}, map[Class]int64{ClassOK: 1}, Success},
		{"lost", mkHist(send("m1", ok, 0, 10), done(1)),
			Policy{}, map[Class]int64{ClassLost: 1}, Failure},
		{"duplicate of an accepted message", mkHist(send("m1", ok, 0, 10), fin("m1", inbox1, 1, 1), fin("m1", inbox1, 2, 1), done(1)),
			Policy{}, map[Class]int64{ClassDuplicated: 1}, Failure},
		{"duplicate of an indeterminate attempt, retried", mkHist(
			att("m1", 1, indet, 0, 10), att("m1", 2, ok, 20, 30), withAttempts(send("m1", ok, 0, 30), 2),
			fin("m1", inbox1, 1, 1), fin("m1", inbox1, 2, 1), done(1)),
			Policy{}, map[Class]int64{ClassRecoveredDuplicate: 1}, Success},
		{"recovered duplicate rejected by policy", mkHist(
			att("m1", 1, indet, 0, 10), att("m1", 2, ok, 20, 30), withAttempts(send("m1", ok, 0, 30), 2),
			fin("m1", inbox1, 1, 1), fin("m1", inbox1, 2, 1), done(1)),
			Policy{RejectRecoveredDuplicates: true}, map[Class]int64{ClassRecoveredDuplicate: 1}, Failure},
		{"more copies than attempts explain", mkHist(
			att("m1", 1, indet, 0, 10), att("m1", 2, ok, 20, 30), withAttempts(send("m1", ok, 0, 30), 2),
			fin("m1", inbox1, 1, 1), fin("m1", inbox1, 2, 1), fin("m1", inbox1, 3, 1), done(1)),
			Policy{}, map[Class]int64{ClassDuplicated: 1}, Failure},
		{"retried op without an indeterminate attempt record is not an excuse", mkHist(
			att("m1", 1, fail, 0, 10), withAttempts(send("m1", ok, 0, 30), 2),
			fin("m1", inbox1, 1, 1), fin("m1", inbox1, 2, 1), done(1)),
			Policy{}, map[Class]int64{ClassDuplicated: 1}, Failure},
		{"corrupted", mkHist(send("m1", ok, 0, 10), corrupt, done(1)),
			Policy{}, map[Class]int64{ClassCorrupted: 1}, Failure},
		{"hex case does not matter", mkHist(upper, lower, done(1)),
			Policy{}, map[Class]int64{ClassOK: 1}, Success},
		{"unexpected: never sent", mkHist(fin("ghost", inbox1, 1, 1), done(1)),
			Policy{}, map[Class]int64{ClassUnexpected: 1}, Failure},
		{"unexpected: no X-Mailchaos-Id", mkHist(foreign, done(1)),
			Policy{}, map[Class]int64{ClassUnexpected: 1}, Failure},
		{"unexpected: every attempt failed yet delivered", mkHist(send("m1", fail, 0, 10), fin("m1", inbox1, 1, 1), done(1)),
			Policy{}, map[Class]int64{ClassUnexpected: 1}, Failure},
		{"unexpected: delivered to the wrong mailbox", mkHist(send("m1", ok, 0, 10), fin("m1", inbox2, 1, 1), done(1)),
			Policy{}, map[Class]int64{ClassLost: 1, ClassUnexpected: 1}, Failure},
		{"recovered", mkHist(send("m1", indet, 0, 10), fin("m1", inbox1, 1, 1), done(1)),
			Policy{}, map[Class]int64{ClassRecovered: 1}, Success},
		{"not delivered: indeterminate", mkHist(send("m1", indet, 0, 10), done(1)),
			Policy{}, map[Class]int64{ClassNotDelivered: 1}, Success},
		{"not delivered: failed", mkHist(send("m1", fail, 0, 10), done(1)),
			Policy{}, map[Class]int64{ClassNotDelivered: 1}, Success},
		{"late", mkHist(send("m1", ok, 0, 10), done(1), fin("m1", inbox1, 1, 2), done(2)),
			Policy{}, map[Class]int64{ClassLate: 1}, Failure},
		{"late allowed", mkHist(send("m1", ok, 0, 10), done(1), fin("m1", inbox1, 1, 2), done(2)),
			Policy{AllowLate: true}, map[Class]int64{ClassLate: 1}, Success},
		{"present in the first round, gone from the last", mkHist(send("m1", ok, 0, 10), fin("m1", inbox1, 1, 1), done(1), done(2)),
			Policy{}, map[Class]int64{ClassLost: 1}, Failure},
		{"incomplete later round is ignored", mkHist(send("m1", ok, 0, 10), fin("m1", inbox1, 1, 1), done(1), phase(history.PhaseFinalRead, 2, 99999)),
			Policy{}, map[Class]int64{ClassOK: 1}, Success},
		{"expunged by a client", mkHist(send("m1", ok, 0, 10), seen("m1", inbox1, 1, 20), expunge, done(1)),
			Policy{}, map[Class]int64{ClassExpunged: 1}, Success},
		{"two recipients, one lost", mkHist(send("m1", ok, 0, 10, u1, u2), fin("m1", inbox1, 1, 1), done(1)),
			Policy{}, map[Class]int64{ClassOK: 1, ClassLost: 1}, Failure},
		{"final records before the sends (clock order)", mkHist(fin("m2", inbox1, 2, 1), fin("m1", inbox1, 1, 1), done(1), send("m2", ok, 5, 6), send("m1", ok, 0, 10)),
			Policy{}, map[Class]int64{ClassOK: 2}, Success},
		{"interleaved retries of two clients", mkHist(
			att("a", 1, indet, 0, 10), att("b", 1, fail, 1, 2), att("b", 2, ok, 3, 4), att("a", 2, ok, 11, 12),
			withAttempts(send("b", ok, 1, 4), 2), withAttempts(send("a", ok, 0, 12), 2),
			fin("a", inbox1, 1, 1), fin("b", inbox1, 2, 1), fin("a", inbox1, 3, 1), done(1)),
			Policy{}, map[Class]int64{ClassRecoveredDuplicate: 1, ClassOK: 1}, Success},
		{"interleaved retries: the definite failure cannot explain a copy", mkHist(
			att("a", 1, indet, 0, 10), att("b", 1, fail, 1, 2), att("b", 2, ok, 3, 4), att("a", 2, ok, 11, 12),
			withAttempts(send("b", ok, 1, 4), 2), withAttempts(send("a", ok, 0, 12), 2),
			fin("a", inbox1, 1, 1), fin("b", inbox1, 2, 1), fin("b", inbox1, 3, 1), done(1)),
			Policy{}, map[Class]int64{ClassOK: 1, ClassDuplicated: 1}, Failure},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := mustRun(t, tc.recs, tc.policy)
			for _, cl := range Classes {
				if got := v.Ledger.Counts[cl]; got != tc.want[cl] {
					t.Errorf("%s = %d, want %d", cl, got, tc.want[cl])
				}
				if got := v.Metrics[metricName(cl)]; got != float64(tc.want[cl]) {
					t.Errorf("metric %s = %v, want %d", metricName(cl), got, tc.want[cl])
				}
			}
			r := result(v, CheckLedger)
			if r.Status != tc.status {
				t.Errorf("ledger status = %s (%s), want %s", r.Status, r.Reason, tc.status)
			}
			if r.Status == Failure && len(r.Evidence) == 0 {
				t.Errorf("failure without evidence")
			}
			for _, e := range r.Evidence {
				if e.MsgID != "" && len(e.Ops) == 0 {
					t.Errorf("evidence for %s cites no ops", e.MsgID)
				}
			}
		})
	}
}

func TestLedgerUnknownWithoutFinalRead(t *testing.T) {
	for name, recs := range map[string][]history.Record{
		"empty run":              mkHist(),
		"no final read":          mkHist(send("m1", ok, 0, 10)),
		"final read not done":    mkHist(send("m1", ok, 0, 10), phase(history.PhaseFinalRead, 1, 50), fin("m1", inbox1, 1, 1)),
		"final records, no done": mkHist(send("m1", ok, 0, 10), fin("m1", inbox1, 1, 1)),
	} {
		t.Run(name, func(t *testing.T) {
			v := mustRun(t, recs, Policy{Thresholds: []string{"lost == 0"}})
			if r := result(v, CheckLedger); r.Status != Unknown {
				t.Fatalf("ledger = %s (%s), want unknown", r.Status, r.Reason)
			}
			if v.Status == Success {
				t.Fatalf("verdict = success without a final read")
			}
			if _, ok := v.Metrics["lost"]; ok {
				t.Fatalf("lost is measured without a final read")
			}
			if v.Thresholds[0].Status != Unknown {
				t.Fatalf("threshold lost == 0 = %s, want unknown", v.Thresholds[0].Status)
			}
		})
	}
}

func TestLedgerEvidenceCitesOps(t *testing.T) {
	v := mustRun(t, mkHist(att("m1", 1, indet, 0, 10), att("m1", 2, ok, 20, 30), withAttempts(send("m1", ok, 0, 30), 2), done(1)), Policy{})
	r := result(v, CheckLedger)
	if r.Status != Failure || len(r.Evidence) != 1 {
		t.Fatalf("ledger = %+v", r)
	}
	e := r.Evidence[0]
	if e.Problem != "lost" || e.MsgID != "m1" || e.Mailbox != u1 || len(e.Ops) != 3 || e.Ops[0].Line != 2 {
		t.Fatalf("evidence = %+v", e)
	}
	if !strings.Contains(r.Reason, "1 lost") {
		t.Fatalf("reason = %q", r.Reason)
	}
}

func TestLedgerEvidenceBounded(t *testing.T) {
	var recs []history.Record
	for i := range 30 {
		recs = append(recs, send(string(rune('a'+i%26))+strings.Repeat("x", i/26), ok, 0, 10))
	}
	recs = append(recs, done(1))
	v := mustRun(t, mkHist(recs...), Policy{MaxEvidence: 5})
	r := result(v, CheckLedger)
	if len(r.Evidence) != 5 || r.EvidenceOmitted != 25 {
		t.Fatalf("evidence %d omitted %d", len(r.Evidence), r.EvidenceOmitted)
	}
}

// A body hash is compared as the SHA-256 it names: hex case does not
// matter, and a string that is not 64 hex digits is a hash of its own.
func TestFingerprint(t *testing.T) {
	sum := sha256.Sum256([]byte("body"))
	lower := hex.EncodeToString(sum[:])
	upper := strings.ToUpper(lower)
	if fingerprint(lower) != sum || fingerprint(upper) != sum {
		t.Fatalf("hex digest not decoded: %x", fingerprint(lower))
	}
	for _, s := range []string{"", "deadbeef", lower[:63] + "g", "-" + lower[1:], lower + "0"} {
		if got, want := fingerprint(s), sha256.Sum256([]byte("non-hex:"+s)); got != want {
			t.Errorf("fingerprint(%q) = %x, want the hash of the string", s, got)
		}
	}
	if fingerprint(lower[:63]+"g") == fingerprint(lower[:63]+"h") {
		t.Error("two different non-hex strings share a fingerprint")
	}
}
