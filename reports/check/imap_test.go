package check

import (
	"testing"

	"github.com/mailchaos/mailchaos/history"
)

func withUIDV(r history.Record, v uint32) history.Record { r.UIDValidity = v; return r }

func TestIMAPInvariants(t *testing.T) {
	store := imapOp(history.KindIMAPStore, ok, 30, 31, "store")
	store.UID, store.UIDValidity, store.Flags = 1, 1, []string{`\Seen`, `\Flagged`}
	storeByID := store
	storeByID.UID, storeByID.MsgID = 0, "m1"
	expunge := imapOp(history.KindIMAPExpunge, ok, 40, 41, "expunge")
	expunge.UID, expunge.UIDValidity = 1, 1
	expungeIndet := expunge
	expungeIndet.Outcome = indet
	sel := imapOp(history.KindIMAPSelect, ok, 5, 6, "select")
	sel.UIDValidity = 1
	sel2 := sel
	sel2.UIDValidity, sel2.Start, sel2.End = 2, ms(70), ms(71)

	base := []history.Record{send("m1", ok, 0, 10), send("m2", ok, 50, 60)}
	tests := []struct {
		name   string
		recs   []history.Record
		metric string // the metric that must be 1 (empty: none)
		status Status
	}{
		{"clean", mkHist(append(base, seen("m1", inbox1, 1, 20), seen("m2", inbox1, 2, 70),
			fin("m1", inbox1, 1, 1), fin("m2", inbox1, 2, 1), done(1))...), "", Success},
		{"uidvalidity changed (select)", mkHist(append(base, sel, sel2, seen("m1", inbox1, 1, 20),
			fin("m1", inbox1, 1, 1), fin("m2", inbox1, 2, 1), done(1))...), "uidvalidity_changes", Failure},
		{"uidvalidity changed (final read)", mkHist(append(base, seen("m1", inbox1, 1, 20),
			withUIDV(fin("m1", inbox1, 1, 1), 9), withUIDV(fin("m2", inbox1, 2, 1), 9), done(1))...), "uidvalidity_changes", Failure},
		{"uid reused for another message", mkHist(append(base, seen("m1", inbox1, 1, 20), seen("m2", inbox1, 1, 70),
			fin("m2", inbox1, 1, 1), done(1))...), "uid_reused", Failure},
		{"uid lower than a message that existed before the send", mkHist(append(base, seen("m1", inbox1, 5, 20), seen("m2", inbox1, 3, 70),
			fin("m1", inbox1, 5, 1), fin("m2", inbox1, 3, 1), done(1))...), "uid_order", Failure},
		{"concurrent sends may arrive in either order", mkHist(send("m1", ok, 0, 10), send("m2", ok, 0, 10),
			seen("m1", inbox1, 5, 20), seen("m2", inbox1, 3, 21), fin("m1", inbox1, 5, 1), fin("m2", inbox1, 3, 1), done(1)), "", Success},
		{"new uidvalidity resets the order", mkHist(append(base, seen("m1", inbox1, 5, 20), withUIDV(seen("m2", inbox1, 3, 70), 2),
			withUIDV(fin("m1", inbox1, 5, 1), 2), withUIDV(fin("m2", inbox1, 3, 1), 2), done(1))...), "uidvalidity_changes", Failure},
		{"expunged message reappears", mkHist(append(base, seen("m1", inbox1, 1, 20), expunge, seen("m1", inbox1, 1, 80),
			fin("m1", inbox1, 1, 1), fin("m2", inbox1, 2, 1), done(1))...), "reappeared", Failure},
		{"expunged message reappears under a new UID", mkHist(append(base, seen("m1", inbox1, 1, 20), expunge,
			fin("m1", inbox1, 7, 1), fin("m2", inbox1, 2, 1), done(1))...), "reappeared", Failure},
		{"indeterminate expunge may leave it", mkHist(append(base, seen("m1", inbox1, 1, 20), expungeIndet,
			fin("m1", inbox1, 1, 1), fin("m2", inbox1, 2, 1), done(1))...), "", Success},
		{"expunged and gone", mkHist(append(base, seen("m1", inbox1, 1, 20), expunge,
			fin("m2", inbox1, 2, 1), done(1))...), "", Success},
		{"flags kept", mkHist(append(base, seen("m1", inbox1, 1, 20), store,
			finFlags("m1", inbox1, 1, 1, `\flagged`, `\Seen`, `\Recent`), fin("m2", inbox1, 2, 1), done(1))...), "", Success},
		{"flags lost", mkHist(append(base, seen("m1", inbox1, 1, 20), store,
			finFlags("m1", inbox1, 1, 1, `\Seen`), fin("m2", inbox1, 2, 1), done(1))...), "flags_lost", Failure},
		{"flags lost, store named by message id", mkHist(append(base, seen("m1", inbox1, 1, 20), storeByID,
			fin("m1", inbox1, 1, 1), fin("m2", inbox1, 2, 1), done(1))...), "flags_lost", Failure},
		{"no observations", mkHist(base...), "", Unknown},
	}
	metrics := []string{"uidvalidity_changes", "uid_reused", "uid_order", "reappeared", "flags_lost"}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := mustRun(t, tc.recs, Policy{})
			r := result(v, CheckIMAP)
			if r.Status != tc.status {
				t.Fatalf("imap = %s (%s), want %s", r.Status, r.Reason, tc.status)
			}
			for _, m := range metrics {
				want := 0.0
				if m == tc.metric {
					want = 1
				}
				if v.Metrics[m] != want {
					t.Errorf("%s = %v, want %v", m, v.Metrics[m], want)
				}
			}
			if tc.status == Failure && (len(r.Evidence) == 0 || r.Evidence[0].Detail == "") {
				t.Errorf("failure without evidence: %+v", r)
			}
		})
	}
}

func TestUIDValidityChangeReportsWhen(t *testing.T) {
	v := mustRun(t, mkHist(send("m1", ok, 0, 10), seen("m1", inbox1, 1, 20), withUIDV(seen("m1", inbox1, 1, 500), 3),
		withUIDV(fin("m1", inbox1, 1, 1), 3), done(1)), Policy{})
	ch := v.IMAP.UIDValidityChanges
	if len(ch) != 1 || ch[0].From != 1 || ch[0].To != 3 || ch[0].At != ms(500) || ch[0].Mailbox != inbox1 {
		t.Fatalf("changes = %+v", ch)
	}
}

// The UID-order check walks dense UID indexes, or sorts when some UID is
// too sparse for them; both must find the same violations in the same order.
func TestUIDOrderDenseAndSparseAgree(t *testing.T) {
	build := func(base uint32) []history.Record {
		var recs []history.Record
		for k, box := range []string{inbox2, inbox1} {
			a, b, c := box+"-a", box+"-b", box+"-c"
			recs = append(recs,
				send(a, ok, 10*k, 10*k+1), seen(a, box, base+5, 100),
				send(b, ok, 200, 201), seen(b, box, base+3, 300),
				send(c, ok, 400, 401), seen(c, box, base+4, 500))
		}
		return mkHist(recs...)
	}
	dense, sparse := mustRun(t, build(1), Policy{}), mustRun(t, build(1_000_000), Policy{})
	if dense.IMAP.UIDOrder != 4 || sparse.IMAP.UIDOrder != dense.IMAP.UIDOrder {
		t.Fatalf("uid order: dense %d, sparse %d", dense.IMAP.UIDOrder, sparse.IMAP.UIDOrder)
	}
	de, se := result(dense, CheckIMAP).Evidence, result(sparse, CheckIMAP).Evidence
	if len(de) != len(se) {
		t.Fatalf("evidence: %d vs %d", len(de), len(se))
	}
	for i := range de {
		if de[i].MsgID != se[i].MsgID || de[i].Mailbox != se[i].Mailbox || de[i].UID+999_999 != se[i].UID {
			t.Fatalf("evidence %d: %+v vs %+v", i, de[i], se[i])
		}
	}
}

// An expunge that names neither the message nor the UIDVALIDITY targets the
// message observed at its UID in its mailbox under any UIDVALIDITY, never
// one at the same UID in another mailbox.
func TestExpungeWithoutUIDValidity(t *testing.T) {
	expunge := imapOp(history.KindIMAPExpunge, ok, 40, 41, "expunge")
	expunge.UID = 1
	other := withUIDV(seen("m2", inbox2, 1, 15), 7) // same UID, other mailbox, observed first
	recs := mkHist(send("m1", ok, 0, 10), send("m2", ok, 0, 10, u2), other, withUIDV(seen("m1", inbox1, 1, 20), 3),
		expunge, withUIDV(seen("m1", inbox1, 1, 80), 3), withUIDV(fin("m1", inbox1, 1, 1), 3), withUIDV(fin("m2", inbox2, 1, 1), 7), done(1))
	v := mustRun(t, recs, Policy{})
	ev := result(v, CheckIMAP).Evidence
	if v.Metrics["reappeared"] != 1 || len(ev) != 1 || ev[0].MsgID != "m1" || ev[0].Mailbox != inbox1 {
		t.Fatalf("reappeared = %v, evidence %+v", v.Metrics["reappeared"], ev)
	}

	expunge.UID = 9 // observed nowhere: the expunge targets nothing
	recs = mkHist(send("m1", ok, 0, 10), withUIDV(seen("m1", inbox1, 1, 20), 3), expunge, withUIDV(fin("m1", inbox1, 1, 1), 3), done(1))
	if v := mustRun(t, recs, Policy{}); v.Metrics["reappeared"] != 0 || v.Ledger.Counts[ClassOK] != 1 {
		t.Fatalf("reappeared = %v, ledger %v", v.Metrics["reappeared"], v.Ledger.Counts)
	}
}
