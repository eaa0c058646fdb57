package check_test

import (
	"context"
	"fmt"

	"github.com/mailchaos/mailchaos/loadgen/history"
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
		{Type: history.TypeEvent, Kind: history.KindPhase, Client: "scenario", Name: history.PhaseFinalReadDone, Attempt: 1, Start: 2e9},
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
