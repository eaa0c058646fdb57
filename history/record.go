// Package history is the recorded history of a mailchaos run: the contract
// between the producers (the load generator, the fault timeline, the scenario
// phases) and the consumers (the checkers and renderers in reports).
//
// A history is JSON Lines. The first line is a header record; every later
// line is one operation, event, observation or final-read record. Times are
// offsets in integer nanoseconds from the run's base time, taken on the
// monotonic clock, so they order correctly even if the wall clock jumps.
//
// The package is the one definition of the format: the record types, kinds
// and phase names (record.go), the one encoder (AppendRecord, used by
// Writer), the one decoder (a fast path that defers to encoding/json, used
// by Reader and by the parallel streaming Scan) and the JSON Schema
// (history.schema.json, embedded as Schema). The format is versioned: the
// header, always the first record, carries SchemaVersion, and a reader
// refuses any other. The package imports nothing else of mailchaos, so any
// tool can read a history without the rest of the harness.
package history

import (
	"fmt"
	"strings"
	"time"
)

// SchemaVersion is the version of the record format written by this package.
// A reader accepts histories of this version only.
const SchemaVersion = 1

// Type says what a record is.
type Type string

// The record types.
const (
	// TypeHeader is the first record of every history.
	TypeHeader Type = "header"
	// TypeOp is one client operation: an attempt, or the outcome of a
	// logical operation after the client's retry policy.
	TypeOp Type = "op"
	// TypeEvent is a fault injection or heal, or a phase change of the run.
	TypeEvent Type = "event"
	// TypeSeen is an IMAP observation of a message during the run.
	TypeSeen Type = "seen"
	// TypeFinal is one message found by a final read of a mailbox.
	TypeFinal Type = "final"
)

// Outcome is how an operation ended.
type Outcome string

// The outcomes of an operation.
const (
	// OK means the operation completed; for an SMTP send it means the server
	// answered 2xx to the final "." of DATA: the message is accepted.
	OK Outcome = "ok"
	// Fail means the operation definitely did not take effect.
	Fail Outcome = "fail"
	// Indeterminate means the effect is unknown: for an SMTP send, the
	// connection broke (or timed out) after the final "." and before the
	// reply. The message may or may not exist.
	Indeterminate Outcome = "indeterminate"
)

// Scope tells a raw attempt from a client-policy operation.
type Scope string

// The scopes of an operation record.
const (
	// ScopeAttempt is one try: one connection or command sequence. Raw
	// error windows are computed from attempts.
	ScopeAttempt Scope = "attempt"
	// ScopeOp is a logical operation under the documented client policy
	// (reconnect and retry within a bounded budget). It spans from its first
	// attempt's start to its last attempt's end; Attempt holds how many tries
	// it took. Client-visible downtime is computed from failed ops.
	ScopeOp Scope = "op"
)

// Kind names what an operation or event record is about: "<protocol>.<verb>"
// for operations, "fault.inject", "phase", ... for events. Producers may
// add kinds; consumers must ignore kinds they do not know.
type Kind string

// Operation kinds.
const (
	KindSMTPSend    Kind = "smtp.send"    // submit one message (MsgID, Rcpt, BodySHA256)
	KindIMAPLogin   Kind = "imap.login"   // connect, greeting, TLS, authenticate
	KindIMAPSelect  Kind = "imap.select"  // select a mailbox (UIDValidity)
	KindIMAPSearch  Kind = "imap.search"  // UID SEARCH of a mailbox
	KindIMAPFetch   Kind = "imap.fetch"   // FETCH headers or body of one message (UID, MsgID, BodySHA256)
	KindIMAPIdle    Kind = "imap.idle"    // IDLE until a new message is announced
	KindIMAPStore   Kind = "imap.store"   // set flags on a message (UID, Flags)
	KindIMAPExpunge Kind = "imap.expunge" // expunge a message (UID)
)

// Event kinds.
const (
	// KindFaultInject is a fault being injected. Start is the call, End the
	// observed effect; Name is the fault kind and Target what it hits.
	KindFaultInject Kind = "fault.inject"
	// KindFaultHeal is a fault being healed; Start and End as for inject.
	KindFaultHeal Kind = "fault.heal"
	// KindPhase marks the start of a phase of the run (Name, see Phase*).
	KindPhase Kind = "phase"
	// KindResolve records what the scenario's plan resolved against the
	// stack before anything started: Name is what was asked (a fault spec,
	// whose target may be a selector, or ResolvePrimary), Target what it
	// resolved to (targets separated by ","), Detail how.
	KindResolve Kind = "resolve"
)

// ResolvePrimary is the Name of the KindResolve event that records the
// run's primary region.
const ResolvePrimary = "primary-region"

// ResolveReplicas is the Name of the KindResolve event that declares the
// mailbox replicas the stack has (Target: their names, separated by ","),
// written before anything starts. A history that declares a replica owes a
// replica-read-done for it: one cut before the replica reads is
// incomplete, not a history of a stack without replicas.
const ResolveReplicas = "replicas"

// Phase is the name of a phase of the run, carried in the Name of a
// KindPhase event (see Record.Phase).
type Phase string

// Phase names carried by KindPhase events.
const (
	PhaseSteady    Phase = "steady"     // the steady-state check before faults
	PhaseLoad      Phase = "load"       // load with the fault timeline
	PhaseHeal      Phase = "heal"       // every fault healed
	PhaseConverge  Phase = "converge"   // the convergence window starts; Detail holds its deadline offset in ns
	PhaseFinalRead Phase = "final-read" // a final read round starts; Attempt holds the round (1, 2, ...)
	// PhaseFinalReadDone marks a complete final read round (Attempt is the
	// round). Without it loss cannot be judged and the ledger is unknown.
	PhaseFinalReadDone Phase = "final-read-done"
	// PhaseReplicaRead marks the start of a read of one mailbox replica
	// directly (not through the client endpoint), after the final read;
	// Target names the replica. Its final records carry the same Target.
	PhaseReplicaRead Phase = "replica-read"
	// PhaseReplicaReadDone marks a complete read of the replica named by
	// Target. Without it that replica cannot be judged.
	PhaseReplicaReadDone Phase = "replica-read-done"
	PhaseDone            Phase = "done" // the run ended
)

// Types lists every record type, header first.
var Types = []Type{TypeHeader, TypeOp, TypeEvent, TypeSeen, TypeFinal}

// OpKinds lists the operation kinds the producers of this module write.
var OpKinds = []Kind{KindSMTPSend, KindIMAPLogin, KindIMAPSelect, KindIMAPSearch, KindIMAPFetch, KindIMAPIdle, KindIMAPStore, KindIMAPExpunge}

// EventKinds lists the event kinds.
var EventKinds = []Kind{KindFaultInject, KindFaultHeal, KindPhase, KindResolve}

// Phases lists the phase names of KindPhase events, in run order.
var Phases = []Phase{PhaseSteady, PhaseLoad, PhaseHeal, PhaseConverge, PhaseFinalRead, PhaseFinalReadDone, PhaseReplicaRead, PhaseReplicaReadDone, PhaseDone}

// Phase returns the phase a KindPhase event marks, "" for any other record.
func (r *Record) Phase() Phase {
	if r.Type != TypeEvent || r.Kind != KindPhase {
		return ""
	}
	return Phase(r.Name)
}

// Protocol returns the protocol of an operation kind: "smtp" for
// "smtp.send", the whole kind if it has no dot.
func (k Kind) Protocol() string {
	p, _, _ := strings.Cut(string(k), ".")
	return p
}

// Offset is a time in nanoseconds since the run's base time.
type Offset int64

// Duration converts the offset to a time.Duration.
func (o Offset) Duration() time.Duration { return time.Duration(o) }

// String formats the offset as a duration since the run started.
func (o Offset) String() string { return time.Duration(o).String() }

// Record is one line of a history. Which fields are set depends on Type;
// unset fields are omitted from the JSON.
type Record struct {
	Type Type `json:"type"`

	// Header fields.
	Version  int       `json:"version,omitempty"`
	RunID    string    `json:"run_id,omitempty"`
	Seed     int64     `json:"seed,omitempty"`
	Scenario string    `json:"scenario,omitempty"`
	BaseTime time.Time `json:"base_time,omitzero"`

	// Who and what: ops, events, observations.
	Client string `json:"client,omitempty"` // the producing client, e.g. "smtp-3", "imap-idle-7", "nemesis"
	Kind   Kind   `json:"kind,omitempty"`   // see Kind* constants
	Name   string `json:"name,omitempty"`   // event: fault kind or phase name
	Target string `json:"target,omitempty"` // event: what the fault hits; final and replica-read events: the replica read

	// Timing.
	Start Offset `json:"start"`
	End   Offset `json:"end,omitempty"`

	// Outcome of an op (and of a fault inject/heal: fail if it errored).
	Scope   Scope   `json:"scope,omitempty"`
	Attempt int     `json:"attempt,omitempty"` // attempt number (ScopeAttempt), attempts used (ScopeOp), read round (final)
	Outcome Outcome `json:"outcome,omitempty"`
	// Class is the typed reason of a non-ok outcome or the reply of an ok
	// one: "smtp:451 4.3.0", "imap:UNAVAILABLE", "timeout", "conn-refused",
	// "conn-reset", "eof", "tls", "auth", "dns", ... taken from typed errors.
	Class string `json:"class,omitempty"`
	// Stage is where an operation ended: connect, greeting, tls, auth, mail,
	// rcpt, data, data-end (after the final "."), select, search, fetch,
	// idle, store, expunge, logout.
	Stage  string `json:"stage,omitempty"`
	Detail string `json:"detail,omitempty"`

	// Message facts.
	MsgID      string   `json:"msg_id,omitempty"`
	Rcpt       []string `json:"rcpt,omitempty"`        // smtp.send: envelope recipients (mailbox addresses)
	BodySHA256 string   `json:"body_sha256,omitempty"` // hex SHA-256 of the body as sent or as read
	Size       int      `json:"size,omitempty"`        // message size in bytes

	// IMAP facts.
	Mailbox     string   `json:"mailbox,omitempty"` // "user0001@example.test/INBOX"
	UIDValidity uint32   `json:"uidvalidity,omitempty"`
	UID         uint32   `json:"uid,omitempty"`
	Flags       []string `json:"flags,omitempty"`
}

// Clone returns a copy of r that shares no memory with it: the records a
// decoder hands out alias its buffers.
func (r *Record) Clone() Record {
	c := *r
	for _, s := range []*string{&c.RunID, &c.Scenario, &c.Client, &c.Name, &c.Target, &c.Class, &c.Stage, &c.Detail, &c.MsgID, &c.BodySHA256, &c.Mailbox} {
		*s = strings.Clone(*s)
	}
	c.Kind = Kind(strings.Clone(string(c.Kind)))
	c.Type, c.Scope, c.Outcome = Type(strings.Clone(string(c.Type))), Scope(strings.Clone(string(c.Scope))), Outcome(strings.Clone(string(c.Outcome)))
	c.Rcpt, c.Flags = cloneStrings(c.Rcpt), cloneStrings(c.Flags)
	return c
}

// cloneStrings copies v and its strings; nil stays nil, empty stays empty.
func cloneStrings(v []string) []string {
	if v == nil {
		return nil
	}
	out := make([]string, len(v))
	for i, s := range v {
		out[i] = strings.Clone(s)
	}
	return out
}

// Validate reports the first thing that makes r malformed for its type.
func (r *Record) Validate() error {
	switch r.Type {
	case TypeHeader:
		if r.Version != SchemaVersion {
			return fmt.Errorf("header: version %d, this reader understands version %d", r.Version, SchemaVersion)
		}
		if r.RunID == "" {
			return fmt.Errorf("header: run_id missing")
		}
	case TypeOp:
		if r.Kind == "" || r.Client == "" {
			return fmt.Errorf("op: kind and client are required")
		}
		switch r.Outcome {
		case OK, Fail, Indeterminate:
		default:
			return fmt.Errorf("op: outcome %q is not ok, fail or indeterminate", r.Outcome)
		}
		switch r.Scope {
		case ScopeAttempt, ScopeOp:
		default:
			return fmt.Errorf("op: scope %q is not attempt or op", r.Scope)
		}
		if r.End < r.Start {
			return fmt.Errorf("op: end %d before start %d", r.End, r.Start)
		}
		if r.Kind == KindSMTPSend && r.MsgID == "" {
			return fmt.Errorf("op: smtp.send without msg_id")
		}
	case TypeEvent:
		if r.Kind == "" || r.Name == "" {
			return fmt.Errorf("event: kind and name are required")
		}
	case TypeSeen, TypeFinal:
		if r.Mailbox == "" {
			return fmt.Errorf("%s: mailbox is required", r.Type)
		}
		if r.UID == 0 {
			return fmt.Errorf("%s: uid is required", r.Type)
		}
	default:
		return fmt.Errorf("unknown record type %q", r.Type)
	}
	if r.Start < 0 {
		return fmt.Errorf("%s: negative start %d", r.Type, r.Start)
	}
	return nil
}
