package imapload

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailchaos/mailchaos/history"
)

// FinalReadConfig configures one final-read round.
type FinalReadConfig struct {
	Round       int // 1, 2, ...: recorded in the phase events and every final record
	Concurrency int // connections at once (default 16)
	// Replica, when set, makes this the read of one mailbox replica (the
	// Options' Addr reaches it directly): the read is framed by
	// PhaseReplicaRead and PhaseReplicaReadDone instead, and it and every
	// final record carry the replica's name as Target, so that the ledger
	// tells it from the final read through the client endpoint.
	Replica string
}

// String names the read in errors and details: "final read round 2",
// "read of replica store-b".
func (cfg FinalReadConfig) String() string {
	if cfg.Replica != "" {
		return "read of replica " + cfg.Replica
	}
	return fmt.Sprintf("final read round %d", cfg.Round)
}

// phases returns the names of the events that frame the read.
func (cfg FinalReadConfig) phases() (start, done history.Phase) {
	if cfg.Replica != "" {
		return history.PhaseReplicaRead, history.PhaseReplicaReadDone
	}
	return history.PhaseFinalRead, history.PhaseFinalReadDone
}

// FinalReadResult summarises a final-read round.
type FinalReadResult struct {
	Mailboxes int           // mailboxes read completely
	Messages  int           // final records written
	Failed    []string      // mailboxes that could not be read within the policy
	Elapsed   time.Duration // wall time of the round
}

// FinalRead reads every message of every account's INBOX: UID, UIDVALIDITY,
// X-Mailchaos-Id, the SHA-256 of BODY[TEXT] and the flags, one "final"
// record each. The round is framed by PhaseFinalRead and, only when every
// mailbox was read completely, PhaseFinalReadDone: without the latter the
// checkers must not judge loss. A mailbox's records are written only once
// the whole mailbox has been read (a retried read never leaves half a
// mailbox behind). Mailboxes are read in parallel over at most Concurrency
// connections, each under the client policy, read-only (EXAMINE), with
// BODY.PEEK so that reading changes no flag.
func FinalRead(ctx context.Context, o Options, accounts []Account, cfg FinalReadConfig) (FinalReadResult, error) {
	o = o.withDefaults()
	if cfg.Round < 1 {
		return FinalReadResult{}, fmt.Errorf("final read: round %d, want >= 1", cfg.Round)
	}
	conc := cfg.Concurrency
	if conc <= 0 {
		conc = 16
	}
	rec := o.Recorder
	startPhase, donePhase := cfg.phases()
	if err := rec.PhaseOn(startPhase, cfg.Replica, cfg.Round, fmt.Sprintf("%d mailboxes", len(accounts))); err != nil {
		return FinalReadResult{}, fmt.Errorf("final read: record phase: %w", err)
	}
	start := time.Now()
	var (
		mu  sync.Mutex
		res FinalReadResult
		wg  sync.WaitGroup
	)
	work := make(chan Account)
	for w := range min(conc, max(len(accounts), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for acct := range work {
				n, err := readMailbox(ctx, o, fmt.Sprintf("final-%d", w+1), acct, cfg)
				mu.Lock()
				if err != nil {
					res.Failed = append(res.Failed, acct.Mailbox())
				} else {
					res.Mailboxes++
					res.Messages += n
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, a := range accounts {
		select {
		case work <- a:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	res.Elapsed = time.Since(start)
	sort.Strings(res.Failed)
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("%s: %w", cfg, err)
	}
	if res.Mailboxes != len(accounts) {
		return res, fmt.Errorf("%s: %d of %d mailboxes unreadable within the client policy (first: %s)",
			cfg, len(accounts)-res.Mailboxes, len(accounts), first(res.Failed))
	}
	if err := rec.PhaseOn(donePhase, cfg.Replica, cfg.Round, fmt.Sprintf("%d mailboxes, %d messages", res.Mailboxes, res.Messages)); err != nil {
		return res, fmt.Errorf("final read: record phase: %w", err)
	}
	return res, nil
}

func first(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return l[0]
}

// readMailbox reads one mailbox completely under the client policy and
// writes its final records.
func readMailbox(ctx context.Context, o Options, name string, acct Account, cfg FinalReadConfig) (int, error) {
	round := cfg.Round
	cl := NewClient(name, acct, o)
	cl.readOnly = true
	defer cl.Close()
	to := cl.o.Timeouts
	var msgs []msgInfo
	var validity uint32
	_, err := cl.do(ctx, history.KindIMAPFetch, StageFetch, to.Command, func(ctx context.Context, s *session, rec *history.Record) error {
		msgs, validity = nil, s.uidValidity
		// Always UID FETCH 1:*, never skip on the client's cached message
		// count: that cache read 0 for mailboxes that held mail, and the
		// round then reported a full INBOX as empty (messages "lost" from
		// one final read to the next). On an empty mailbox the server
		// simply returns nothing.
		var all imap.UIDSet
		all.AddRange(1, 0)
		got, err := fetch(s, all, true, to.Command)
		if err != nil {
			return err
		}
		msgs = got
		rec.Detail = fmt.Sprintf("%s: %d messages", cfg, len(got))
		return nil
	})
	if err != nil {
		return 0, err
	}
	clock := o.Recorder.Clock()
	now := clock.Now()
	var errs []error
	for _, m := range msgs {
		errs = append(errs, o.Recorder.Final(history.Record{
			Client: name, Target: cfg.Replica, Start: now, Attempt: round, Mailbox: acct.Mailbox(), UIDValidity: validity, UID: m.UID,
			MsgID: m.MsgID, BodySHA256: m.BodySHA256, Flags: m.Flags, Size: int(m.Size),
		}))
	}
	o.Stats.FinalMailboxes.Add(1)
	o.Stats.FinalMessages.Add(int64(len(msgs)))
	return len(msgs), errors.Join(errs...)
}
