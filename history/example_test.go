package history_test

import (
	"bytes"
	"fmt"
	"io"

	"github.com/mailchaos/mailchaos/history"
)

func Example() {
	var buf bytes.Buffer
	w, _ := history.NewWriter(&buf, history.NewClock(), history.Header{RunID: "run-1", Seed: 7})
	_ = w.Op(history.Record{
		Client: "smtp-1", Kind: history.KindSMTPSend, Scope: history.ScopeOp, Attempt: 1,
		MsgID: "run-1.smtp-1.1", Rcpt: []string{"user0001@example.test"},
		Outcome: history.OK, Class: "smtp:250 2.0.0",
	})
	_ = w.Close()

	rd, _ := history.NewReader("example", &buf)
	fmt.Println("run", rd.Header().RunID, "seed", rd.Header().Seed)
	for {
		r, err := rd.Next()
		if err == io.EOF {
			break
		}
		fmt.Println(r.Type, r.Kind, r.MsgID, r.Outcome)
	}
	// Output:
	// run run-1 seed 7
	// op smtp.send run-1.smtp-1.1 ok
}
