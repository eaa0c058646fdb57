package check

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/mailchaos/mailchaos/history"
)

// rfin is a final record of the direct read of replica rep: same message,
// but the replica's own UIDVALIDITY and UIDs.
func rfin(rep, id, mbox string, uid uint32) history.Record {
	return history.Record{Type: history.TypeFinal, Client: "replica-read", Target: rep, MsgID: id, Mailbox: mbox, UIDValidity: 99, UID: uid,
		BodySHA256: hash(id), Attempt: 1, Start: ms(200000 + int(uid))}
}

func rread(rep string, attempt int) history.Record {
	r := phase(history.PhaseReplicaRead, attempt, 199000)
	r.Target = rep
	return r
}

func rdone(rep string, attempt int) history.Record {
	r := phase(history.PhaseReplicaReadDone, attempt, 201000)
	r.Target = rep
	return r
}

// replicaRead is a complete read of replica rep holding ids in inbox1.
func replicaRead(rep string, ids ...string) []history.Record {
	recs := []history.Record{rread(rep, 1)}
	for i, id := range ids {
		recs = append(recs, rfin(rep, id, inbox1, uint32(100+i)))
	}
	return append(recs, rdone(rep, 1))
}

// sentAndRead is two accepted messages that the final read found.
func sentAndRead() []history.Record {
	return []history.Record{send("m1", ok, 0, 10), send("m2", ok, 20, 30), fin("m1", inbox1, 1, 1), fin("m2", inbox1, 2, 1), done(1)}
}

func joinRecs(parts ...[]history.Record) []history.Record {
	var recs []history.Record
	for _, p := range parts {
		recs = append(recs, p...)
	}
	return mkHist(recs...)
}

func one(r ...history.Record) []history.Record { return r }

func TestReplicas(t *testing.T) {
	corrupt := rfin("store-b", "m2", inbox1, 101)
	corrupt.BodySHA256 = "mangled"
	retried := rfin("store-b", "m2", inbox1, 101)
	retried.Attempt = 2
	elsewhere := rfin("store-b", "m2", inbox2, 101)
	const absent = -1
	tests := []struct {
		name     string
		recs     []history.Record
		status   Status
		metrics  map[string]float64 // absent: must not be measured
		reason   string
		evidence []string // problem msg_id, in order
	}{
		{"two replicas complete", joinRecs(sentAndRead(), replicaRead("store-a", "m1", "m2"), replicaRead("store-b", "m2", "m1")),
			Success, map[string]float64{"replica_missing": 0, "replica_corrupted": 0, "replica_extra": 0, "replicas_read": 2},
			"2 replicas hold every message the final read found", nil},
		{"one replica complete", joinRecs(sentAndRead(), replicaRead("store-b", "m1", "m2")),
			Success, map[string]float64{"replica_missing": 0, "replicas_read": 1}, "store-b holds every message the final read found", nil},
		{"a replica missing a message", joinRecs(sentAndRead(), replicaRead("store-a", "m1", "m2"), replicaRead("store-b", "m1")),
			Failure, map[string]float64{"replica_missing": 1, "replica_corrupted": 0, "replica_extra": 0, "replicas_read": 2},
			"store-b lacks 1 of 2 messages the final read found", []string{"replica-missing m2"}},
		{"a replica with a corrupted copy", joinRecs(sentAndRead(), one(rread("store-b", 1), rfin("store-b", "m1", inbox1, 100), corrupt, rdone("store-b", 1))),
			Failure, map[string]float64{"replica_missing": 0, "replica_corrupted": 1, "replicas_read": 1},
			"store-b holds 1 with a different body hash", []string{"replica-corrupted m2"}},
		{"copies the final read lacks are extra, not failing", joinRecs(sentAndRead(), replicaRead("store-b", "m1", "m2", "m3", "m3")),
			Success, map[string]float64{"replica_missing": 0, "replica_extra": 1}, "1 extra on the replicas", nil},
		{"the same message in another mailbox is missing here and extra there", joinRecs(sentAndRead(), one(rread("store-b", 1), rfin("store-b", "m1", inbox1, 100), elsewhere, rdone("store-b", 1))),
			Failure, map[string]float64{"replica_missing": 1, "replica_extra": 1}, "store-b lacks 1 of 2", []string{"replica-missing m2"}},
		{"an incomplete replica read is unknown", joinRecs(sentAndRead(), replicaRead("store-a", "m1", "m2"), one(rread("store-b", 1), rfin("store-b", "m1", inbox1, 100))),
			Unknown, map[string]float64{"replica_missing": absent, "replica_corrupted": absent, "replica_extra": absent, "replicas_read": 1},
			"store-b not judged (no replica-read-done)", nil},
		{"replica records without any replica-read event are unknown", joinRecs(sentAndRead(), one(rfin("store-b", "m1", inbox1, 100))),
			Unknown, map[string]float64{"replica_missing": absent, "replicas_read": 0}, "store-b not judged", nil},
		{"a complete replica that fails is reported beside an incomplete one", joinRecs(sentAndRead(), replicaRead("store-a", "m1"), one(rread("store-b", 1))),
			Failure, map[string]float64{"replica_missing": 1, "replica_corrupted": 0, "replica_extra": absent, "replicas_read": 1},
			"store-a lacks 1 of 2 messages the final read found; store-b not judged", []string{"replica-missing m2"}},
		{"without a final read there is nothing to compare", joinRecs(one(send("m1", ok, 0, 10)), replicaRead("store-b", "m1")),
			Unknown, map[string]float64{"replica_missing": absent, "replica_extra": absent, "replica_corrupted": 0, "replicas_read": 1},
			"no complete final read", nil},
		{"corruption shows even without a final read", joinRecs(one(send("m2", ok, 0, 10), rread("store-b", 1), corrupt, rdone("store-b", 1))),
			Failure, map[string]float64{"replica_missing": absent, "replica_corrupted": 1}, "store-b holds 1 with a different body hash", []string{"replica-corrupted m2"}},
		{"the last complete attempt is judged", joinRecs(sentAndRead(), one(rread("store-b", 1), rfin("store-b", "m1", inbox1, 100), rread("store-b", 2),
			withAttempts(rfin("store-b", "m1", inbox1, 100), 2), retried, rdone("store-b", 2))),
			Success, map[string]float64{"replica_missing": 0, "replicas_read": 1}, "store-b holds every message", nil},
		{"an incomplete later attempt does not hide a complete one", joinRecs(sentAndRead(), replicaRead("store-b", "m1"), one(rread("store-b", 2), retried)),
			Failure, map[string]float64{"replica_missing": 1}, "store-b lacks 1 of 2", []string{"replica-missing m2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := mustRun(t, tc.recs, Policy{})
			r := result(v, CheckReplicas)
			if r.Name != CheckReplicas {
				t.Fatalf("no replicas check in %+v", v.Checks)
			}
			if v.Checks[len(v.Checks)-1].Name != CheckReplicas {
				t.Errorf("replicas is not the last check")
			}
			if r.Status != tc.status {
				t.Errorf("replicas = %s (%s), want %s", r.Status, r.Reason, tc.status)
			}
			if !strings.Contains(r.Reason, tc.reason) {
				t.Errorf("reason %q lacks %q", r.Reason, tc.reason)
			}
			if tc.status == Failure && v.Status != Failure {
				t.Errorf("verdict %s with a failed replicas check", v.Status)
			}
			for m, want := range tc.metrics {
				got, measured := v.Metrics[m]
				switch {
				case want == absent && measured:
					t.Errorf("%s = %v, want unmeasured", m, got)
				case want != absent && (!measured || got != want):
					t.Errorf("%s = %v (measured %v), want %v", m, got, measured, want)
				}
			}
			var ev []string
			for _, e := range r.Evidence {
				ev = append(ev, e.Problem+" "+e.MsgID)
				if !strings.Contains(e.Detail, "store-") {
					t.Errorf("evidence does not name the replica: %q", e.Detail)
				}
				if len(e.Ops) == 0 {
					t.Errorf("evidence for %s cites no history lines", e.MsgID)
				}
			}
			if strings.Join(ev, ", ") != strings.Join(tc.evidence, ", ") {
				t.Errorf("evidence %q, want %q", ev, tc.evidence)
			}
		})
	}
}

func TestReplicaEvidence(t *testing.T) {
	recs := joinRecs(sentAndRead(), replicaRead("store-a", "m1", "m2"), replicaRead("store-b", "m1"))
	v := mustRun(t, recs, Policy{})
	r := result(v, CheckReplicas)
	if len(r.Evidence) != 1 {
		t.Fatalf("evidence %+v", r.Evidence)
	}
	e := r.Evidence[0]
	if e.Problem != "replica-missing" || e.MsgID != "m2" || e.Mailbox != inbox1 {
		t.Errorf("evidence %+v", e)
	}
	// Line 13 is store-b's replica-read-done; the final read found m2 at
	// line 5. The ops are the message's records: its send, its final-read
	// copy and store-a's copy (line 9, with the replica named).
	for _, want := range []string{"replica store-b has no copy", "completed at line 13", "UID 2 (line 5)", "accepted"} {
		if !strings.Contains(e.Detail, want) {
			t.Errorf("detail %q lacks %q", e.Detail, want)
		}
	}
	var lines []int64
	for _, op := range e.Ops {
		lines = append(lines, op.Line)
	}
	if len(e.Ops) != 3 || lines[0] != 3 || lines[1] != 5 || lines[2] != 9 || e.Ops[2].Target != "store-a" || e.Ops[1].Target != "" {
		t.Errorf("ops %+v", e.Ops)
	}
	if len(v.Replicas) != 2 || v.Replicas[1] != (ReplicaSummary{Name: "store-b", Complete: true, Attempt: 1, Copies: 1, Missing: 1}) ||
		v.Replicas[0] != (ReplicaSummary{Name: "store-a", Complete: true, Attempt: 1, Copies: 2}) {
		t.Errorf("summaries %+v", v.Replicas)
	}
}

// With little room for evidence, every failing replica is still shown.
func TestReplicaEvidenceTakesTurns(t *testing.T) {
	var recs []history.Record
	var ids []string
	for i, id := range []string{"a", "b", "c", "d"} {
		recs = append(recs, send(id, ok, i*10, i*10+5), fin(id, inbox1, uint32(i+1), 1))
		ids = append(ids, id)
	}
	recs = append(recs, done(1))
	v := mustRun(t, joinRecs(recs, replicaRead("store-b", ids[3]), replicaRead("store-a", ids[2:]...)), Policy{MaxEvidence: 3})
	r := result(v, CheckReplicas)
	var got []string
	for _, e := range r.Evidence {
		got = append(got, e.MsgID+"@"+strings.Fields(e.Detail)[1])
	}
	if strings.Join(got, " ") != "a@store-a a@store-b b@store-a" || r.EvidenceOmitted != 2 {
		t.Errorf("evidence %v, omitted %d", got, r.EvidenceOmitted)
	}
	if r.Reason != "store-a lacks 2 of 4 messages the final read found; store-b lacks 3 of 4 messages the final read found" {
		t.Errorf("reason %q", r.Reason)
	}
	if v.Metrics["replica_missing"] != 5 {
		t.Errorf("replica_missing = %v", v.Metrics["replica_missing"])
	}
}

// A stack that declares no replicas has nothing to check: no check, no
// metric, no summary.
func TestReplicaCheckAbsentWithoutReplicaReads(t *testing.T) {
	v := mustRun(t, joinRecs(sentAndRead()), Policy{})
	if len(v.Checks) != 3 || result(v, CheckReplicas).Name != "" || v.Replicas != nil {
		t.Fatalf("checks %+v replicas %+v", v.Checks, v.Replicas)
	}
	for m := range v.Metrics {
		if strings.HasPrefix(m, "replica") {
			t.Errorf("metric %s without replica reads", m)
		}
	}
	if _, err := RunRecords(t.Context(), joinRecs(sentAndRead()), Policy{Thresholds: []string{"replica_missing == 0"}}); err != nil {
		t.Fatalf("replica_missing is not a known metric: %v", err)
	}
	v = mustRun(t, joinRecs(sentAndRead()), Policy{Thresholds: []string{"replica_missing == 0"}})
	if v.Thresholds[0].Status != Unknown {
		t.Errorf("threshold replica_missing == 0 without replica reads = %s, want unknown", v.Thresholds[0].Status)
	}
}

// Replica records are not final-read copies or IMAP observations, and
// replica-read events are not final-read rounds.
func TestReplicaRecordsStayOutOfTheLedgerAndIMAP(t *testing.T) {
	tests := []struct {
		name   string
		recs   []history.Record
		counts map[Class]int64
		status Status
	}{
		{"a message only on a replica is lost", joinRecs(one(send("m1", ok, 0, 10), done(1)), replicaRead("store-b", "m1")),
			map[Class]int64{ClassLost: 1}, Failure},
		{"a message on the final read and a replica is counted once", joinRecs(one(send("m1", ok, 0, 10), fin("m1", inbox1, 1, 1), done(1)), replicaRead("store-a", "m1"), replicaRead("store-b", "m1")),
			map[Class]int64{ClassOK: 1}, Success},
		{"a replica's copy of an unsent message is not unexpected", joinRecs(one(send("m1", ok, 0, 10), fin("m1", inbox1, 1, 1), done(1)), replicaRead("store-b", "m1", "ghost")),
			map[Class]int64{ClassOK: 1}, Success},
		{"a replica-read-done is not a final-read round", joinRecs(one(send("m1", ok, 0, 10)), replicaRead("store-b", "m1")),
			map[Class]int64{}, Unknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := mustRun(t, tc.recs, Policy{})
			if r := result(v, CheckLedger); r.Status != tc.status {
				t.Errorf("ledger = %s (%s), want %s", r.Status, r.Reason, tc.status)
			}
			for _, cl := range Classes {
				if got := v.Ledger.Counts[cl]; got != tc.counts[cl] {
					t.Errorf("%s = %d, want %d", cl, got, tc.counts[cl])
				}
			}
			wantCopies := int64(tc.counts[ClassOK])
			if v.Ledger.FinalCopies != wantCopies || v.Ledger.Deliveries != tc.counts[ClassOK]+tc.counts[ClassLost] {
				t.Errorf("final copies %d deliveries %d", v.Ledger.FinalCopies, v.Ledger.Deliveries)
			}
			if v.Ledger.FinalRead != (tc.status != Unknown) {
				t.Errorf("final read %v", v.Ledger.FinalRead)
			}
		})
	}

	// The replicas have their own UIDVALIDITY and UIDs, reuse the final
	// read's UIDs for other messages, hold a flagless copy of a message a
	// client flagged and a copy of an expunged one: none of it is an IMAP
	// observation.
	store := imapOp(history.KindIMAPStore, ok, 50, 51, "store")
	store.UID, store.UIDValidity, store.MsgID, store.Flags = 1, 1, "m1", []string{`\Flagged`}
	exp := imapOp(history.KindIMAPExpunge, ok, 60, 61, "expunge")
	exp.UID, exp.UIDValidity, exp.MsgID = 3, 1, "m3"
	reused := rfin("store-b", "m2", inbox1, 1)
	reused.UIDValidity = 1
	recs := joinRecs(one(send("m1", ok, 0, 10), send("m2", ok, 20, 30), send("m3", ok, 32, 34),
		seen("m1", inbox1, 1, 40), seen("m2", inbox1, 2, 41), seen("m3", inbox1, 3, 42), store, exp,
		finFlags("m1", inbox1, 1, 1, `\Flagged`), fin("m2", inbox1, 2, 1), done(1)),
		one(rread("store-b", 1), reused, rfin("store-b", "m1", inbox1, 7), rfin("store-b", "m3", inbox1, 2), rdone("store-b", 1)),
		one(rread("store-a", 1), rfin("store-a", "m2", "user0003@example.test/INBOX", 1), rdone("store-a", 1)))
	v := mustRun(t, recs, Policy{})
	if r := result(v, CheckIMAP); r.Status != Success {
		t.Errorf("imap = %s (%s) %+v", r.Status, r.Reason, r.Evidence)
	}
	if v.IMAP.Observations != 5 || v.IMAP.Mailboxes != 1 || len(v.IMAP.UIDValidityChanges) != 0 || v.Metrics["imap_violations"] != 0 {
		t.Errorf("imap summary %+v", v.IMAP)
	}
	if r := result(v, CheckLedger); r.Status != Success || v.Ledger.Counts[ClassExpunged] != 1 {
		t.Errorf("ledger = %s (%s) %v", r.Status, r.Reason, v.Ledger.Counts)
	}
	if v.Metrics["delivery_unseen"] != 0 {
		t.Errorf("delivery_unseen = %v", v.Metrics["delivery_unseen"])
	}
	// store-b holds m1 and m2 (and the expunged m3, extra); store-a holds
	// m2 in a mailbox the final read never named: missing m1 and m2 in
	// INBOX of user0001, one extra.
	if r := result(v, CheckReplicas); r.Status != Failure || v.Metrics["replica_missing"] != 2 || v.Metrics["replica_extra"] != 2 {
		t.Errorf("replicas = %s (%s); missing %v extra %v", r.Status, r.Reason, v.Metrics["replica_missing"], v.Metrics["replica_extra"])
	}
}

// On a full generated history with every message on two replicas, every
// replica metric is produced and known.
func TestReplicaMetricsOnAFullHistory(t *testing.T) {
	var buf strings.Builder
	_ = genHistory(&buf, 300)
	rd, err := history.NewReader("g", strings.NewReader(buf.String()))
	if err != nil {
		t.Fatal(err)
	}
	recs := []history.Record{rd.Header()}
	var finals []history.Record
	for r, err := rd.Next(); err == nil; r, err = rd.Next() {
		recs = append(recs, r)
		if r.Type == history.TypeFinal {
			finals = append(finals, r)
		}
	}
	for _, rep := range []string{"store-a", "store-b"} {
		recs = append(recs, rread(rep, 1))
		for i, f := range finals {
			f.Target, f.Client, f.UIDValidity, f.UID = rep, "replica-read", 5, uint32(i+1)
			recs = append(recs, f)
		}
		recs = append(recs, rdone(rep, 1))
	}
	v := mustRun(t, recs, Policy{Thresholds: []string{"replica_missing == 0", "replica_corrupted == 0", "replicas_read == 2"}})
	if v.Status != Success {
		t.Fatalf("verdict %s: %s", v.Status, v.Reason)
	}
	for _, m := range []string{"replica_missing", "replica_corrupted", "replica_extra", "replicas_read"} {
		if _, ok := v.Metrics[m]; !ok || !KnownMetric(m) {
			t.Errorf("metric %s: produced %v, known %v", m, ok, KnownMetric(m))
		}
	}
	if v.IMAP.Observations != int64(len(finals))+300 {
		t.Errorf("observations %d: replica records counted", v.IMAP.Observations)
	}
}

// Random histories against a plain count with maps: per replica, the
// pairs of the last complete final-read round it lacks, holds with
// another body, or holds although the final read did not find them.
func TestReplicasAgreeWithAPlainCount(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	ids := []string{"a", "b", "c", "d", "e", "f"}
	boxes := []string{inbox1, inbox2, "user0003@example.test/INBOX"}
	reps := []string{"store-a", "store-b", "store-c"}
	type pair struct{ id, box string }
	for n := range 300 {
		var recs []history.Record
		for i, id := range ids {
			if rng.IntN(4) > 0 {
				recs = append(recs, send(id, ok, i, i+1))
			}
		}
		rounds := rng.IntN(3) // complete final-read rounds
		final := map[pair]bool{}
		for round := 1; round <= rounds+1; round++ {
			for _, id := range ids {
				for _, box := range boxes {
					if rng.IntN(3) == 0 {
						recs = append(recs, fin(id, box, uint32(1+rng.IntN(50)), round))
						if round == rounds {
							final[pair{id, box}] = true
						}
					}
				}
			}
			if round <= rounds {
				recs = append(recs, done(round))
			}
		}
		want := map[string]ReplicaSummary{}
		for _, rep := range reps[:1+rng.IntN(len(reps))] {
			attempts := 1 + rng.IntN(2)
			s := ReplicaSummary{Name: rep}
			held := map[pair]bool{}
			bad := map[pair]bool{}
			for a := 1; a <= attempts; a++ {
				complete := rng.IntN(4) > 0
				recs = append(recs, rread(rep, a))
				for _, id := range ids {
					for _, box := range boxes {
						if rng.IntN(2) == 0 {
							continue
						}
						r := withAttempts(rfin(rep, id, box, uint32(1+rng.IntN(50))), a)
						corrupt := rng.IntN(8) == 0
						if corrupt {
							r.BodySHA256 = "other"
						}
						recs = append(recs, r)
						if complete {
							if s.Attempt != a {
								s.Attempt, s.Copies, held, bad = a, 0, map[pair]bool{}, map[pair]bool{}
							}
							s.Copies++
							held[pair{id, box}] = true
							if corrupt && slices.ContainsFunc(recs, func(x history.Record) bool { return x.Type == history.TypeOp && x.MsgID == id }) {
								bad[pair{id, box}] = true
							}
						}
					}
				}
				if complete {
					recs = append(recs, rdone(rep, a))
					s.Complete = true
					if s.Attempt != a { // a complete read of nothing
						s.Attempt, s.Copies, held, bad = a, 0, map[pair]bool{}, map[pair]bool{}
					}
				}
			}
			if s.Complete && rounds > 0 {
				for p := range final {
					if !held[p] {
						s.Missing++
					}
				}
				for p := range held {
					if !final[p] {
						s.Extra++
					}
				}
			}
			if s.Complete {
				s.Corrupted = int64(len(bad))
			} else {
				s.Copies = 0
			}
			want[rep] = s
		}
		rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
		v := mustRun(t, mkHist(recs...), Policy{})
		if len(v.Replicas) != len(want) {
			t.Fatalf("history %d: %d replicas, want %d", n, len(v.Replicas), len(want))
		}
		for _, got := range v.Replicas {
			if got != want[got.Name] {
				t.Fatalf("history %d: %+v, want %+v", n, got, want[got.Name])
			}
		}
	}
}
