// Package check turns a recorded history into a Verdict: pure functions that
// prove, from the history file alone, whether accepted mail was lost,
// duplicated or corrupted, whether the IMAP stores kept their invariants,
// whether every mailbox replica holds what the clients can see, how long
// clients could not work, and how fast mail moved.
//
// The package reads only the history format (package history); it never
// talks to Docker or the network, so a verdict can be recomputed offline by
// anyone who holds the history. It does not render anything: reports/render
// turns a Verdict into JUnit, verdict.json and HTML.
//
// The exact definitions (ledger classes, replica comparison, downtime
// windows, threshold syntax) are in the doc comments of the types below and
// in README.md.
package check

import (
	"time"

	"github.com/mailchaos/mailchaos/history"
)

// VerdictVersion is the version of the Verdict's JSON form (verdict.schema.json).
const VerdictVersion = 1

// Status is the outcome of a check, a threshold or a whole verdict.
type Status string

// The statuses. Unknown is never a pass: it means the history could not
// prove the property (e.g. no complete final read).
const (
	Success Status = "success"
	Failure Status = "failure"
	Unknown Status = "unknown"
)

// Check names, as they appear in Result.Name.
const (
	CheckLedger       = "ledger"
	CheckIMAP         = "imap-invariants"
	CheckAvailability = "availability"
	// CheckReplicas compares each mailbox replica, read directly after the
	// final read, with the final read's last complete round; see
	// ReplicaSummary. It is in Verdict.Checks only when the history reads
	// at least one replica (a replica-read event, or a final record with a
	// Target): a history that reads none has nothing to check there.
	CheckReplicas = "replicas"
	// CheckFaultsHealed is the check that every injected fault took
	// effect and was healed once the heal phase began. It is in
	// Verdict.Checks only when the history injected a fault.
	CheckFaultsHealed = "faults-healed"
)

// Verdict is everything the checkers conclude about one run.
type Verdict struct {
	Version    int               `json:"version"`            // VerdictVersion
	RunID      string            `json:"run_id"`             // from the history header
	Scenario   string            `json:"scenario"`           // from the history header
	Seed       int64             `json:"seed"`               // from the history header
	BaseTime   time.Time         `json:"base_time,omitzero"` // wall-clock time of offset 0
	History    string            `json:"history,omitempty"`  // the history's name (its path) when read from a file
	Span       Span              `json:"span"`               // first and last offsets seen in the history
	Records    int64             `json:"records"`            // records read, header excluded
	Status     Status            `json:"status"`             // Failure if any check or threshold failed, else Unknown if any is unknown or the history is incomplete, else Success
	Reason     string            `json:"reason"`             // one line: why the verdict is what it is
	Policy     Policy            `json:"policy"`             // the policy the verdict was judged under
	Checks     []Result          `json:"checks"`             // ledger, imap-invariants, availability, then replicas if the history reads replicas
	Thresholds []ThresholdResult `json:"thresholds"`         // one per Policy.Thresholds entry, in order
	// Incomplete lists the mandatory phases the history lacks, in run
	// order: "final-read-done" (no complete final-read round),
	// "replica-read-done <replica>" (a replica read or declared but not
	// read completely) and "done" (the run was cut). A verdict with any is
	// never a success; without "done" it is unknown even if a check
	// failed, since the cut itself may be what the check saw.
	Incomplete []string `json:"incomplete,omitempty"`

	Ledger          LedgerSummary          `json:"ledger"`
	IMAP            IMAPSummary            `json:"imap"`
	Faults          []Fault                `json:"faults"`           // fault intervals, in inject order
	Availability    []ProtocolAvailability `json:"availability"`     // per protocol, sorted by name
	Latency         []OpLatency            `json:"latency"`          // per op kind, sorted by kind
	DeliveryLatency DeliveryLatency        `json:"delivery_latency"` // accept -> first seen over IMAP
	QueueDrain      []Drain                `json:"queue_drain"`      // one per fault.heal event

	// Replicas has one entry per mailbox replica the history reads
	// directly (replica-read events), sorted by name; absent when it reads
	// none.
	Replicas []ReplicaSummary `json:"replicas,omitempty"`

	// Metrics is the flat view that thresholds evaluate: every name in it is
	// a measured value. A known metric that could not be measured (e.g.
	// delivery latency without any IMAP observation) is absent, and a
	// threshold over it is Unknown. See MetricNames for the names.
	Metrics map[string]float64 `json:"metrics"`
}

// check returns the result of the named check, nil if v has none.
func (v *Verdict) check(name string) *Result {
	for i := range v.Checks {
		if v.Checks[i].Name == name {
			return &v.Checks[i]
		}
	}
	return nil
}

// Span is an interval of offsets on the history's clock.
type Span struct {
	Start history.Offset `json:"start_ns"`
	End   history.Offset `json:"end_ns"`
}

// Result is the outcome of one check.
type Result struct {
	Name   string `json:"name"`   // one of the Check* names
	Status Status `json:"status"` // success, failure or unknown
	Reason string `json:"reason"` // one line, e.g. "3 accepted messages lost, 1 duplicated"
	// Evidence is the first offending items (at most Policy.MaxEvidence),
	// each with the operations of its message.
	Evidence []Evidence `json:"evidence,omitempty"`
	// EvidenceOmitted counts offending items beyond Evidence.
	EvidenceOmitted int `json:"evidence_omitted,omitempty"`
}

// Evidence is one offending item of a check: a message (with its
// operations), a mailbox invariant or a downtime window.
type Evidence struct {
	Problem string         `json:"problem"`           // a ledger class or invariant name, e.g. "lost", "uid-reused"
	MsgID   string         `json:"msg_id,omitempty"`  // X-Mailchaos-Id of the message, if any
	Mailbox string         `json:"mailbox,omitempty"` // recipient address (ledger) or "user/folder" (IMAP)
	UID     uint32         `json:"uid,omitempty"`
	At      history.Offset `json:"at_ns,omitempty"` // when it was observed, if one instant says it
	Detail  string         `json:"detail"`          // one line with the facts, e.g. "accepted by smtp-3 at 12.3s, 0 copies in final read round 2"
	Ops     []OpRef        `json:"ops,omitempty"`   // the message's recorded operations and observations, in history order (bounded)
}

// OpRef is a compact copy of one history record cited as evidence.
type OpRef struct {
	Line    int64           `json:"line"` // 1-based line in the history file (record index+1 in memory)
	Type    history.Type    `json:"type"`
	Kind    history.Kind    `json:"kind,omitempty"`
	Client  string          `json:"client,omitempty"`
	Target  string          `json:"target,omitempty"` // the replica a replica read's final record comes from
	Scope   history.Scope   `json:"scope,omitempty"`
	Attempt int             `json:"attempt,omitempty"`
	Outcome history.Outcome `json:"outcome,omitempty"`
	Class   string          `json:"class,omitempty"`
	Stage   string          `json:"stage,omitempty"`
	Mailbox string          `json:"mailbox,omitempty"`
	UID     uint32          `json:"uid,omitempty"`
	Start   history.Offset  `json:"start_ns"`
	End     history.Offset  `json:"end_ns,omitempty"`
}

// Class is the ledger class of one delivery: a (message ID, recipient
// mailbox) pair.
type Class string

// The ledger classes. "Accepted" means an SMTP 2xx to the final "." of DATA;
// "indeterminate" means the connection broke after the final "." and before
// the reply; "failed" means every attempt definitely failed. Copies are
// counted in the last complete final-read round.
const (
	ClassOK                 Class = "ok"                  // accepted, exactly one byte-identical copy, present in the first complete round
	ClassLost               Class = "lost"                // accepted, no copy
	ClassDuplicated         Class = "duplicated"          // more copies than the attempts that may have delivered it explain, or >1 copy with no indeterminate attempt
	ClassRecoveredDuplicate Class = "recovered-duplicate" // >1 copy, explained by indeterminate attempts that were retried
	ClassCorrupted          Class = "corrupted"           // a copy whose body hash differs from the sent one
	ClassUnexpected         Class = "unexpected"          // present, but never sent to this mailbox (or every attempt failed)
	ClassRecovered          Class = "recovered"           // indeterminate (never accepted), exactly one copy
	ClassNotDelivered       Class = "not-delivered"       // indeterminate or failed, no copy: allowed
	ClassLate               Class = "late"                // one copy, absent from the first complete round, present in the last
	ClassExpunged           Class = "expunged"            // no copy, and a client expunged it: allowed
)

// Classes lists every ledger class in report order.
var Classes = []Class{ClassOK, ClassLost, ClassDuplicated, ClassRecoveredDuplicate, ClassCorrupted, ClassUnexpected, ClassRecovered, ClassNotDelivered, ClassLate, ClassExpunged}

// LedgerSummary counts the sending side per message and the ledger classes
// per delivery.
type LedgerSummary struct {
	Messages      int64 `json:"messages"`      // distinct message IDs sent (smtp.send records)
	Accepted      int64 `json:"accepted"`      // messages with an accepted attempt
	Indeterminate int64 `json:"indeterminate"` // messages with an indeterminate attempt and none accepted
	Failed        int64 `json:"failed"`        // messages whose every attempt failed
	Deliveries    int64 `json:"deliveries"`    // (message, recipient) pairs judged, unexpected ones included

	// FinalRead is true when at least one final-read round completed.
	FinalRead bool `json:"final_read"`
	// FirstRound and LastRound are the first and last complete final-read
	// rounds; copies are counted in LastRound.
	FirstRound int `json:"first_round,omitempty"`
	LastRound  int `json:"last_round,omitempty"`
	// FinalCopies is the number of messages found by the last complete round.
	FinalCopies int64 `json:"final_copies"`

	// Counts holds a count for every class in Classes (zero included).
	Counts map[Class]int64 `json:"counts"`
}

// IMAPSummary counts the IMAP invariant violations.
type IMAPSummary struct {
	Mailboxes          int64               `json:"mailboxes"`           // distinct mailboxes observed
	Observations       int64               `json:"observations"`        // seen + final records
	UIDValidityChanges []UIDValidityChange `json:"uidvalidity_changes"` // every change, bounded by Policy.MaxEvidence
	UIDReused          int64               `json:"uid_reused"`          // (mailbox, uidvalidity, uid) seen with two message IDs
	UIDOrder           int64               `json:"uid_order"`           // messages whose UID is lower than one that existed before they were sent
	Reappeared         int64               `json:"reappeared"`          // expunged messages observed again after the expunge
	FlagsLost          int64               `json:"flags_lost"`          // flags a client set that the final read did not show
}

// ReplicaSummary is what the direct read of one mailbox replica (one store
// of a replicated stack, read without the client endpoint) found, compared
// with the last complete final-read round. Items are (message ID, mailbox)
// pairs: a pair the final read found at least once must be on the replica
// at least once, byte-identical. Messages without an X-Mailchaos-Id cannot
// be matched and are not compared; extra copies of a pair are not counted.
type ReplicaSummary struct {
	Name string `json:"name"` // the replica, as in the replica-read events' target
	// Complete is true when a replica-read-done was recorded for it; only a
	// complete read is judged (the last complete attempt's records).
	Complete bool  `json:"complete"`
	Attempt  int   `json:"attempt,omitempty"` // the read judged
	Copies   int64 `json:"copies"`            // final records of the read judged
	// Missing counts pairs of the final read with no copy on the replica.
	Missing int64 `json:"missing"`
	// Corrupted counts pairs with a copy on the replica whose body hash
	// differs from the one the message was sent with.
	Corrupted int64 `json:"corrupted"`
	// Extra counts pairs on the replica that the final read did not find
	// (reported, not failing: the ledger judges those messages).
	Extra int64 `json:"extra"`
}

// UIDValidityChange is a mailbox whose UIDVALIDITY changed during the run.
type UIDValidityChange struct {
	Mailbox string         `json:"mailbox"`
	From    uint32         `json:"from"`
	To      uint32         `json:"to"`
	At      history.Offset `json:"at_ns"` // first observation of the new value
}

// Fault is one fault interval: a fault.inject event to its matching
// fault.heal (same name and target, first in first out).
type Fault struct {
	Index  int            `json:"index"` // position in Verdict.Faults
	Name   string         `json:"name"`  // the fault kind
	Target string         `json:"target"`
	Start  history.Offset `json:"start_ns"` // the inject call began
	End    history.Offset `json:"end_ns"`   // the heal's effect was observed, or the end of the history if never healed
	Healed bool           `json:"healed"`
	Failed bool           `json:"failed,omitempty"` // the inject or heal reported an error
}

// Window is an interval during which a protocol was failing.
//
// Ops of one protocol are taken in order of their end offset. A window opens
// at the start of a failing op when none is open, and each later failing op
// extends it. It closes at the end of the first successful op that started
// at or after the start of the window's latest failing op (an op that began
// before the last failure proves nothing about recovery). A window still open
// when the history ends closes at the history's last offset and is marked
// Open.
type Window struct {
	Start    history.Offset `json:"start_ns"`
	End      history.Offset `json:"end_ns"`
	Duration time.Duration  `json:"duration_ns"`
	Failures int            `json:"failures"`         // failing ops (or attempts) in the window
	Stages   []string       `json:"stages"`           // stages where they failed, sorted
	Classes  []string       `json:"classes"`          // error classes, sorted
	Faults   []int          `json:"faults,omitempty"` // indexes into Verdict.Faults of the faults overlapping the window
	Open     bool           `json:"open,omitempty"`   // never closed by a success
}

// Windows summarises a set of windows.
type Windows struct {
	Count   int           `json:"count"`
	Longest time.Duration `json:"longest_ns"`
	Total   time.Duration `json:"total_ns"`
	// Windows lists the longest windows first, bounded by Policy.MaxWindows.
	Windows []Window `json:"windows"`
	// ByFault has one entry per fault: the windows overlapping it.
	ByFault []FaultOverlap `json:"by_fault"`
	// Unattributed counts windows overlapping no fault.
	Unattributed int `json:"unattributed"`
}

// FaultOverlap is the downtime that overlapped one fault interval.
type FaultOverlap struct {
	Fault    int           `json:"fault"`       // index into Verdict.Faults
	Windows  int           `json:"windows"`     // windows overlapping the fault interval
	Longest  time.Duration `json:"longest_ns"`  // the longest of them
	Downtime time.Duration `json:"downtime_ns"` // their total length
}

// StageErrors counts failures at one stage of a protocol.
type StageErrors struct {
	Stage          string           `json:"stage"`
	FailedAttempts int64            `json:"failed_attempts"`
	FailedOps      int64            `json:"failed_ops"`
	Classes        map[string]int64 `json:"classes"` // error class -> failed attempts and ops
}

// ProtocolAvailability is the availability of one protocol ("smtp", "imap").
type ProtocolAvailability struct {
	Protocol       string `json:"protocol"`
	Ops            int64  `json:"ops"` // scope op records
	FailedOps      int64  `json:"failed_ops"`
	Attempts       int64  `json:"attempts"` // scope attempt records
	FailedAttempts int64  `json:"failed_attempts"`
	// Raw is computed from every attempt and op: what the servers did.
	Raw Windows `json:"raw"`
	// ClientVisible is computed from ops only (scope op, after the client's
	// retry budget): what a user following the client policy saw.
	ClientVisible Windows       `json:"client_visible"`
	Stages        []StageErrors `json:"stages"` // sorted by stage
}

// Percentiles is an HDR-histogram summary (microsecond resolution, 3
// significant digits).
type Percentiles struct {
	Count int64         `json:"count"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	P999  time.Duration `json:"p999_ns"`
	Max   time.Duration `json:"max_ns"`
}

// OpLatency is the latency of the successful ops (scope op) of one kind,
// from the first attempt's start to the last attempt's end.
type OpLatency struct {
	Kind string `json:"kind"`
	Percentiles
}

// DeliveryLatency is the time from an accepted send's end (the 2xx to the
// final ".") to the first IMAP observation (seen record) of the message in
// each recipient mailbox.
type DeliveryLatency struct {
	Percentiles
	Unseen int64 `json:"unseen"` // accepted deliveries never observed by a seen record
}

// Drain is the queue drain after one heal: from the heal's end to the first
// observation (seen or final) of the last message accepted before it.
type Drain struct {
	Fault int            `json:"fault"` // index into Verdict.Faults of the healed fault (-1 if unmatched)
	Name  string         `json:"name"`
	At    history.Offset `json:"at_ns"` // the heal event's end
	// Duration is zero when everything accepted before the heal had been
	// observed before it.
	Duration time.Duration `json:"duration_ns"`
	Pending  int64         `json:"pending"`  // accepted-before-heal deliveries first observed after the heal
	Unseen   int64         `json:"unseen"`   // accepted-before-heal deliveries never observed: Duration is a lower bound
	Complete bool          `json:"complete"` // Unseen == 0
}

// Threshold is a parsed gate "<metric> <op> <value>".
type Threshold struct {
	Expr   string  `json:"expr"`   // as written
	Metric string  `json:"metric"` // canonical metric name
	Op     string  `json:"op"`     // ==, !=, <, <=, >, >=
	Value  float64 `json:"value"`  // the limit, in seconds for *_s metrics
}

// ThresholdResult is a threshold evaluated against Verdict.Metrics.
type ThresholdResult struct {
	Threshold
	Status   Status   `json:"status"`   // success, failure, or unknown when the metric was not measured
	Measured *float64 `json:"measured"` // the metric's value, null when not measured
}

// Policy is how a scenario wants its run judged. The zero Policy is the
// strict default: recovered duplicates allowed (ARCHITECTURE: a duplicate of
// an indeterminate message is not an error), late messages and any
// client-visible downtime fail, no thresholds.
type Policy struct {
	// RejectRecoveredDuplicates makes a recovered-duplicate fail the ledger.
	RejectRecoveredDuplicates bool `json:"reject_recovered_duplicates,omitempty"`
	// AllowLate lets late deliveries pass the ledger.
	AllowLate bool `json:"allow_late,omitempty"`
	// AllowClientDowntime lets client-visible downtime pass the availability
	// check; use thresholds (client_visible_downtime_max_s < 5) to bound it.
	AllowClientDowntime bool `json:"allow_client_downtime,omitempty"`
	// Thresholds are gates over Verdict.Metrics, e.g. "lost == 0",
	// "delivery_latency_p99_s < 30", "client_visible_downtime_max == 0s".
	Thresholds []string `json:"thresholds,omitempty"`
	// MaxEvidence bounds the evidence per check (default 20).
	MaxEvidence int `json:"max_evidence,omitempty"`
	// MaxWindows bounds the windows listed per window set (default 50).
	MaxWindows int `json:"max_windows,omitempty"`
}
