package check_test

import (
	"context"
	"fmt"

	"github.com/mailchaos/mailchaos/history"
	"github.com/mailchaos/mailchaos/reports/check"
)

func ExampleRunRecords() {
	recs := []history.Record{
		{Type: history.TypeHeader, Version: history.SchemaVersion, RunID: "run-1", Seed: 7},
		{Type: history.TypeOp, Client: "smtp-1", Kind: history.KindSMTPSend, Scope: history.ScopeOp, Attempt: 1,
			MsgID: "run-1.smtp-1.1", Rcpt: []string{"user0001@example.test"}, BodySHA256: "ab", Outcome: history.OK, Start: 0, End: 5e6},
		{Type: history.TypeOp, Client: "smtp-1", Kind: history.KindSMTPSend, Scope: history.ScopeOp, Attempt: 1,
			MsgID: "run-1.smtp-1.2", Rcpt: []string{"user0001@example.test"}, BodySHA256: "cd", Outcome: history.OK, Start: 6e6, End: 9e6},
		{Type: history.TypeFinal, MsgID: "run-1.smtp-1.1", Mailbox: "user0001@example.test/INBOX", UIDValidity: 1, UID: 1, BodySHA256: "ab", Attempt: 1, Start: 1e9},
		{Type: history.TypeEvent, Kind: history.KindPhase, Client: "scenario", Name: string(history.PhaseFinalReadDone), Attempt: 1, Start: 2e9},
		{Type: history.TypeEvent, Kind: history.KindPhase, Client: "scenario", Name: string(history.PhaseDone), Start: 3e9},
	}
	v, err := check.RunRecords(context.Background(), recs, check.Policy{Thresholds: []string{"lost == 0"}})
	if err != nil {
		panic(err)
	}
	fmt.Println(v.Status, v.Ledger.Counts[check.ClassOK], v.Ledger.Counts[check.ClassLost])
	fmt.Println(v.Checks[0].Reason)
	fmt.Println(v.Checks[0].Evidence[0].MsgID, v.Thresholds[0].Status)
	// Output:
	// failure 1 1
	// 1 lost of 2 deliveries (2 messages accepted, final read round 1)
	// run-1.smtp-1.2 failure
}

// A replica read directly after the final read must hold every message the
// final read found; here the replica store-b lacks one.
func ExampleRunRecords_replicas() {
	box := "user0001@example.test/INBOX"
	sent := func(id string) history.Record {
		return history.Record{Type: history.TypeOp, Client: "smtp-1", Kind: history.KindSMTPSend, Scope: history.ScopeOp, Attempt: 1,
			MsgID: id, Rcpt: []string{"user0001@example.test"}, BodySHA256: "ab", Outcome: history.OK, Start: 0, End: 5e6}
	}
	final := func(id, replica string, uid uint32) history.Record {
		return history.Record{Type: history.TypeFinal, Client: "final-1", Target: replica, MsgID: id, Mailbox: box, UIDValidity: 1, UID: uid, BodySHA256: "ab", Attempt: 1, Start: 1e9}
	}
	phase := func(name history.Phase, replica string) history.Record {
		return history.Record{Type: history.TypeEvent, Kind: history.KindPhase, Client: "scenario", Name: string(name), Target: replica, Attempt: 1, Start: 2e9}
	}
	recs := []history.Record{
		{Type: history.TypeHeader, Version: history.SchemaVersion, RunID: "run-1", Seed: 7},
		sent("run-1.smtp-1.1"), sent("run-1.smtp-1.2"),
		final("run-1.smtp-1.1", "", 1), final("run-1.smtp-1.2", "", 2), phase(history.PhaseFinalReadDone, ""),
		phase(history.PhaseReplicaRead, "store-b"), final("run-1.smtp-1.2", "store-b", 1), phase(history.PhaseReplicaReadDone, "store-b"),
		phase(history.PhaseDone, ""),
	}
	v, err := check.RunRecords(context.Background(), recs, check.Policy{})
	if err != nil {
		panic(err)
	}
	r := v.Checks[3]
	fmt.Println(v.Status, v.Checks[0].Status, r.Name, r.Status)
	fmt.Println(r.Reason)
	fmt.Println(r.Evidence[0].Problem, r.Evidence[0].MsgID, v.Metrics["replica_missing"])
	// Output:
	// failure success replicas failure
	// store-b lacks 1 of 2 messages the final read found
	// replica-missing run-1.smtp-1.1 1
}
