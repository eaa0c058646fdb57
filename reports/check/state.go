package check

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash/maphash"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/mailchaos/mailchaos/history"
)

// The checker keeps compact per-message state: message IDs, mailboxes and
// users are interned to uint32 indexes, strings live in a few large arenas,
// and per-message facts are small fixed-size structs in slices. A
// million-message history fits in a few hundred MiB.

const none = ^uint32(0) // no message: a final or seen record without X-Mailchaos-Id

// arena copies strings into large shared blocks so that interned strings
// cost no allocation of their own.
type arena struct{ buf []byte }

func (a *arena) str(s string) string {
	if len(s) == 0 {
		return ""
	}
	if cap(a.buf)-len(a.buf) < len(s) {
		n := 1 << 20
		if len(s) > n {
			n = len(s)
		}
		a.buf = make([]byte, 0, n)
	}
	start := len(a.buf)
	a.buf = append(a.buf, s...)
	b := a.buf[start:len(a.buf):len(a.buf)]
	return unsafe.String(&b[0], len(b))
}

// interner maps strings to dense indexes.
type interner struct {
	m     map[string]uint32
	names []string
	a     *arena
}

func newInterner(a *arena) interner { return interner{m: map[string]uint32{}, a: a} }

func (in *interner) id(s string) (uint32, bool) {
	if v, ok := in.m[s]; ok {
		return v, false
	}
	c := in.a.str(s)
	v := uint32(len(in.names))
	in.m[c] = v
	in.names = append(in.names, c)
	return v, true
}

// idTable interns message IDs without pointers the GC must scan: an
// open-addressing table of uint64 slots (the hash's upper 32 bits as a tag,
// and the index + 1), and the bytes of every ID in one buffer. A lookup
// touches one slot (linear probing, load at most 3/4) and compares the
// stored bytes only when the tag matches, so two IDs with equal hashes are
// still told apart.
//
// An ID is stored encoded: the usual "<prefix>.<decimal>" (run, client,
// sequence) as a tag byte, the prefix's index and the number as varints
// (about 6 bytes instead of 20); anything else verbatim behind its own
// tag. The encoding is one-to-one (the number must be written in its
// canonical form), so equal IDs and equal encodings are the same thing.
type idTable struct {
	seed     maphash.Seed
	slots    []uint64 // tag<<32 | index+1; 0 is empty; len is a power of two
	buf      []byte
	ends     []uint32 // ID i is buf[ends[i-1]:ends[i]]
	prefixes map[string]uint32
	prefix   []string
	enc      []byte // scratch for encode
}

// ID encodings.
const (
	idVerbatim    = 0
	idNumbered    = 1
	maxIDPrefixes = 1 << 16
)

func newIDTable(seed maphash.Seed, n int) idTable {
	size := 1024
	for size*3/4 < n {
		size *= 2
	}
	return idTable{seed: seed, slots: make([]uint64, size), ends: make([]uint32, 0, n), buf: make([]byte, 0, n*8), prefixes: map[string]uint32{}}
}

// encode returns the stored form of s (in t.enc, valid until the next call).
func (t *idTable) encode(s string) []byte {
	e := t.enc[:0]
	dot := strings.LastIndexByte(s, '.')
	num, ok := canonicalNumber(s[dot+1:])
	if dot >= 0 && ok {
		p, known := t.prefixes[s[:dot+1]]
		if !known && len(t.prefix) < maxIDPrefixes {
			p, known = uint32(len(t.prefix)), true
			c := strings.Clone(s[:dot+1])
			t.prefixes[c] = p
			t.prefix = append(t.prefix, c)
		}
		if known {
			e = append(e, idNumbered)
			e = binary.AppendUvarint(e, uint64(p))
			e = binary.AppendUvarint(e, num)
			t.enc = e
			return e
		}
	}
	e = append(e, idVerbatim)
	e = append(e, s...)
	t.enc = e
	return e
}

// canonicalNumber parses a decimal of 1 to 18 digits without a leading
// zero (or "0").
func canonicalNumber(s string) (uint64, bool) {
	if len(s) == 0 || len(s) > 18 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

func (t *idTable) bytes(i uint32) []byte {
	start := uint32(0)
	if i > 0 {
		start = t.ends[i-1]
	}
	return t.buf[start:t.ends[i]]
}

// name decodes ID i.
func (t *idTable) name(i uint32) string {
	b := t.bytes(i)
	if b[0] == idVerbatim {
		return string(b[1:])
	}
	p, k := binary.Uvarint(b[1:])
	num, _ := binary.Uvarint(b[1+k:])
	return t.prefix[p] + strconv.FormatUint(num, 10)
}

func (t *idTable) add(enc []byte) uint32 {
	t.buf = append(t.buf, enc...)
	t.ends = append(t.ends, uint32(len(t.buf)))
	return uint32(len(t.ends) - 1)
}

// id returns the index of s and whether it is new.
func (t *idTable) id(s string) (uint32, bool) {
	enc := t.encode(s)
	h := maphash.Bytes(t.seed, enc)
	mask := uint64(len(t.slots) - 1)
	tag := h >> 32
	for p := h & mask; ; p = (p + 1) & mask {
		e := t.slots[p]
		if e == 0 {
			i := t.add(enc)
			t.slots[p] = tag<<32 | uint64(i+1)
			if len(t.ends) > len(t.slots)*3/4 {
				t.grow()
			}
			return i, true
		}
		if e>>32 == tag && bytes.Equal(t.bytes(uint32(e)-1), enc) {
			return uint32(e) - 1, false
		}
	}
}

func (t *idTable) grow() {
	t.slots = make([]uint64, 2*len(t.slots))
	mask := uint64(len(t.slots) - 1)
	for i := range uint32(len(t.ends)) {
		h := maphash.Bytes(t.seed, t.bytes(i))
		p := h & mask
		for t.slots[p] != 0 {
			p = (p + 1) & mask
		}
		t.slots[p] = h>>32<<32 | uint64(i+1)
	}
}

// msgState is one message (40 bytes: ten million fit in 400 MB). Whether
// it was sent is sendStart >= 0 (a record's start is never negative) and
// whether its body hash is known is hash != 0 (fingerprint64 is never 0),
// so it needs no flag byte of its own.
type msgState struct {
	sendStart  int64  // earliest start of its smtp.send records, -1 if none
	acceptEnd  int64  // earliest end of an accepted smtp.send record, -1 if never accepted
	hash       uint64 // fingerprint64 of the sent body hash, 0 if unknown
	okOps      uint16
	indetOps   uint16
	failOps    uint16
	okAtt      uint16
	indetAtt   uint16
	failAtt    uint16
	firstDeliv int32 // head of its deliveries chain, -1 if none
}

func (m *msgState) sent() bool      { return m.sendStart >= 0 }
func (m *msgState) hashKnown() bool { return m.hash != 0 }
func (m *msgState) accepted() bool  { return m.okOps > 0 || m.okAtt > 0 }
func (m *msgState) indeterminate() bool {
	return !m.accepted() && (m.indetOps > 0 || m.indetAtt > 0)
}

// okCopies and indetCopies bound how many copies the sends may have made:
// each accepted attempt made one, each indeterminate attempt may have made
// one. Producers record every failed or indeterminate attempt but not always
// a successful single attempt, so the op records stand in for missing
// attempt records.
func (m *msgState) okCopies() int    { return max(int(m.okOps), int(m.okAtt)) }
func (m *msgState) indetCopies() int { return max(int(m.indetOps), int(m.indetAtt)) }

// delivState is one (message, recipient user) pair, reached from its
// message's chain (32 bytes).
type delivState struct {
	user        uint32
	next        int32
	firstSeen   int64 // first seen record, -1 if none
	firstObs    int64 // first seen or final record, -1 if none
	copiesLast  uint16
	copiesFirst uint16
	corruptLast uint16
	sent        bool // the user is a recipient of a send record of the message
	expunged    bool // a client expunged it (ok or indeterminate expunge)
}

// uidEntry is one UID of one (mailbox, uidvalidity) pair and the message
// first observed at it (32 bytes).
type uidEntry struct {
	first, last    int64
	pair, uid, msg uint32 // pair indexes pairKeys
	reused         bool
}

// finalRec is one final record of the final read through the client
// endpoint (20 bytes). Its mailbox, UIDVALIDITY and UID are those of its
// uidList entry. Whether its body differs from the one sent is decided
// when it is read if the sent hash is known by then; otherwise its hash
// waits in model.finalHashes until seal.
type finalRec struct {
	msg, entry, flags, line uint32 // entry indexes uidList
	round                   uint16
	bits                    uint8
}

// finalRec bits.
const (
	fCorrupt = 1 << iota // its body hash differs from the one sent
)

// replicaRec is one final record of a replica read (a final record with a
// Target), kept apart from finals so that the ledger and the IMAP
// invariants never see it.
type replicaRec struct {
	msg, mbox uint32 // mbox indexes replicaMboxes
	uid, line uint32
	hash      uint64
	replica   uint32 // index in replicas
	attempt   uint16
	hasHash   bool
}

// replicaState is what the history says about the reads of one replica
// (named by a replica-read event or one of its records).
type replicaState struct {
	done     uint16 // the last attempt with a replica-read-done, 0 if none
	doneLine int64
}

type uidvKey struct{ mbox, uidv uint32 }

// uidvSpan is when a (mailbox, uidvalidity) pair was observed by a record
// that named its UIDVALIDITY (observed is false for the pairs of records
// without one).
type uidvSpan struct {
	first, last int64
	observed    bool
}

// opRec is one op record kept for the availability windows.
type opRec struct {
	start, end   int64
	stage, class uint16
	ok, attempt  bool
}

type protoState struct {
	name                                 string
	ops                                  []opRec
	nOps, failedOps, nAtt, failedAttempt int64
	stages                               map[uint16]*StageErrors
}

type imapAction struct {
	expunge   bool
	ok        bool // outcome ok (else indeterminate)
	mbox, uid uint32
	uidv, msg uint32
	flags     uint32
	end       int64
	line      int64
}

type heal struct {
	fault int
	name  string
	at    int64
}

type faultKey struct{ name, target string }

// checker accumulates one pass over a history.
type model struct {
	p      Policy
	seed   maphash.Seed
	header history.Record
	arena  arena

	records     int64
	first, last int64
	haveSpan    bool

	msgIDs   idTable
	msgs     []msgState
	delivs   []delivState
	users    interner
	mboxes   interner
	mboxUser []uint32
	flagSets interner
	flagList [][]string
	rawFlags map[string]uint32 // raw flag list (flagKey) -> flag set
	flagKey  []byte

	uids  map[uint64]uint32 // pair<<32|uid -> index in uidList, for sparse UIDs
	pairs map[uidvKey]uint32
	// per pair: its key, and when it was observed with its UIDVALIDITY
	pairKeys []uidvKey
	uidvObs  []uidvSpan
	dense    [][]uint32 // per pair: uidList index + 1 by UID
	pairN    []uint32   // per pair: UIDs indexed
	// last pair looked up
	lastPairKey uidvKey
	lastPair    uint32
	havePair    bool
	uidList     []uidEntry
	finals      []finalRec
	finalHashes map[uint32]uint64 // final index -> body hash, when the sent hash came later

	// Derived by seal, read by the checks.
	firstRound, lastRound int        // complete final-read rounds, 0 if none
	finalCopies           int64      // copies in the last complete round
	foreign               []finalRec // its copies without an X-Mailchaos-Id
	sends                 sendTally
	actions               []imapAction
	obsCount              int64

	protos  map[string]*protoState
	strs    interner // stages and classes
	latency map[string]*hist

	faults     []Fault
	pending    map[faultKey][]int
	heals      []heal
	rounds     map[int]bool
	done       bool     // a done phase event was read: the run was not cut
	healPhase  bool     // a heal phase event was read
	reusedList []uint32 // uid entries reused, in order found
	opsHint    int

	// Replica reads: names and mailboxes have interners of their own
	// (made on first use) so that a replica's mailboxes do not count as
	// mailboxes the clients observed.
	replicaNames  interner
	replicaMboxes interner
	replicas      []replicaState // by replicaNames index
	replicaRecs   []replicaRec
}

// newModel makes an empty model; hint is the expected number of records
// (0 if unknown), used to size its tables once instead of growing them.
func newModel(p Policy, hint int) *model {
	hint = min(max(hint, 0), 1<<28)
	n := hint / 4
	md := &model{
		msgs:     make([]msgState, 0, n),
		delivs:   make([]delivState, 0, n),
		uidList:  make([]uidEntry, 0, n),
		finals:   make([]finalRec, 0, n),
		p:        p,
		seed:     maphash.MakeSeed(),
		pairs:    map[uidvKey]uint32{},
		protos:   map[string]*protoState{},
		latency:  map[string]*hist{},
		pending:  map[faultKey][]int{},
		rounds:   map[int]bool{},
		flagList: [][]string{nil},
	}
	md.msgIDs = newIDTable(md.seed, n)
	md.opsHint = n
	md.users = newInterner(&md.arena)
	md.mboxes = newInterner(&md.arena)
	md.flagSets = newInterner(&md.arena)
	md.flagSets.id("") // index 0: no flags
	md.strs = newInterner(&md.arena)
	md.strs.id("")
	return md
}

// entryMbox and entryUIDV are the mailbox and UIDVALIDITY of a uidList entry.
func (md *model) entryMbox(e *uidEntry) uint32 { return md.pairKeys[e.pair].mbox }
func (md *model) entryUIDV(e *uidEntry) uint32 { return md.pairKeys[e.pair].uidv }

// finalMbox and finalUID are the mailbox and UID of a final record.
func (md *model) finalMbox(f *finalRec) uint32 { return md.entryMbox(&md.uidList[f.entry]) }
func (md *model) finalUID(f *finalRec) uint32  { return md.uidList[f.entry].uid }

func (md *model) msg(id string) uint32 {
	i, isNew := md.msgIDs.id(id)
	if isNew {
		md.msgs = append(md.msgs, msgState{sendStart: -1, acceptEnd: -1, firstDeliv: -1})
	}
	return i
}

func (md *model) user(addr string) uint32 {
	if v, ok := md.users.m[addr]; ok {
		return v
	}
	low := strings.ToLower(addr)
	i, _ := md.users.id(low)
	if low != addr {
		md.users.m[md.arena.str(addr)] = i
	}
	return i
}

func (md *model) mbox(name string) uint32 {
	i, isNew := md.mboxes.id(name)
	if isNew {
		u, _, _ := strings.Cut(name, "/")
		md.mboxUser = append(md.mboxUser, md.user(u))
	}
	return i
}

// deliv finds or creates the delivery of msg to user.
func (md *model) deliv(msg, user uint32) *delivState {
	m := &md.msgs[msg]
	for i := m.firstDeliv; i >= 0; i = md.delivs[i].next {
		if md.delivs[i].user == user {
			return &md.delivs[i]
		}
	}
	md.delivs = append(md.delivs, delivState{user: user, next: m.firstDeliv, firstSeen: -1, firstObs: -1})
	m.firstDeliv = int32(len(md.delivs) - 1)
	return &md.delivs[len(md.delivs)-1]
}

func (md *model) flagSet(flags []string) uint32 {
	if len(flags) == 0 {
		return 0
	}
	// Most records repeat a few flag lists verbatim: look the raw list up
	// first (length-prefixed, so the key is unambiguous; the lookup with
	// string(bytes) does not allocate).
	k := md.flagKey[:0]
	for _, f := range flags {
		k = binary.AppendUvarint(k, uint64(len(f)))
		k = append(k, f...)
	}
	md.flagKey = k
	if i, ok := md.rawFlags[string(k)]; ok {
		return i
	}
	i := md.flagSetSlow(flags)
	if md.rawFlags == nil {
		md.rawFlags = map[string]uint32{}
	}
	if len(md.rawFlags) < 1<<16 {
		md.rawFlags[string(k)] = i
	}
	return i
}

func (md *model) flagSetSlow(flags []string) uint32 {
	var canon []string
	for _, f := range flags {
		if strings.EqualFold(f, `\Recent`) {
			continue
		}
		canon = append(canon, strings.ToLower(f))
	}
	slices.Sort(canon)
	canon = slices.Compact(canon)
	key := strings.Join(canon, " ")
	i, isNew := md.flagSets.id(key)
	if isNew {
		for k := range canon {
			canon[k] = md.arena.str(canon[k])
		}
		md.flagList = append(md.flagList, canon)
	}
	return i
}

func (md *model) str(s string) uint16 {
	i, _ := md.strs.id(s)
	if i > 0xffff {
		return 0xffff
	}
	return uint16(i)
}

// fingerprint turns a body hash into 32 bytes: the decoded hex of a SHA-256,
// or the SHA-256 of any other string, so that any two hash strings compare
// equal exactly when they denote the same hash (hex case ignored).
func fingerprint(s string) (h [32]byte) {
	// hex.Decode only reads the string's bytes.
	if len(s) == 64 {
		if _, err := hex.Decode(h[:], unsafe.Slice(unsafe.StringData(s), len(s))); err == nil {
			return h
		}
	}
	return sha256.Sum256([]byte("non-hex:" + s))
}

// fingerprint64 shortens a fingerprint to 64 bits for compact per-message
// state: an accidental collision between two different body hashes has
// probability 2^-63 (the low bit is always set), and the seed is per model.
func (md *model) fingerprint64(s string) uint64 {
	h := fingerprint(s)
	return maphash.Bytes(md.seed, h[:]) | 1 // never 0: 0 is "no hash"
}

// add takes one non-header record. Strings in r may alias a reused buffer:
// anything kept is copied (interners and arena).
func (md *model) add(line int64, r *history.Record) {
	md.records++
	end := max(int64(r.End), int64(r.Start))
	if !md.haveSpan {
		md.first, md.last, md.haveSpan = int64(r.Start), end, true
	} else {
		md.first = min(md.first, int64(r.Start))
		md.last = max(md.last, end)
	}
	switch r.Type {
	case history.TypeOp:
		md.op(line, r)
	case history.TypeEvent:
		md.event(line, r)
	case history.TypeSeen:
		md.observe(line, r, false)
	case history.TypeFinal:
		if r.Target != "" {
			md.replicaFinal(line, r)
			return
		}
		md.observe(line, r, true)
	}
}

func (md *model) proto(name string) *protoState {
	ps, ok := md.protos[name]
	if !ok {
		name = md.arena.str(name)
		ps = &protoState{name: name, stages: map[uint16]*StageErrors{}}
		if name == "smtp" || name == "imap" {
			ps.ops = make([]opRec, 0, md.opsHint)
		}
		md.protos[name] = ps
	}
	return ps
}

func (md *model) op(line int64, r *history.Record) {
	ok := r.Outcome == history.OK
	att := r.Scope == history.ScopeAttempt
	ps := md.proto(r.Kind.Protocol())
	o := opRec{start: int64(r.Start), end: int64(r.End), ok: ok, attempt: att}
	if att {
		ps.nAtt++
	} else {
		ps.nOps++
	}
	if !ok {
		o.stage = md.str(r.Stage)
		o.class = md.str(r.Class)
		st := ps.stages[o.stage]
		if st == nil {
			st = &StageErrors{Stage: md.strs.names[o.stage], Classes: map[string]int64{}}
			ps.stages[o.stage] = st
		}
		cl := md.strs.names[o.class]
		if cl == "" {
			cl = "unknown"
		}
		st.Classes[cl]++
		if att {
			ps.failedAttempt++
			st.FailedAttempts++
		} else {
			ps.failedOps++
			st.FailedOps++
		}
	}
	ps.ops = append(ps.ops, o)
	if ok && !att {
		h := md.latency[string(r.Kind)]
		if h == nil {
			h = newHist()
			md.latency[md.arena.str(string(r.Kind))] = h
		}
		h.record(int64(r.End - r.Start))
	}

	switch r.Kind {
	case history.KindSMTPSend:
		md.send(r)
	case history.KindIMAPSelect:
		if ok && r.Mailbox != "" && r.UIDValidity != 0 {
			md.uidvSeen(md.mbox(r.Mailbox), r.UIDValidity, int64(r.Start))
		}
	case history.KindIMAPFetch:
		if ok && r.Mailbox != "" && r.UID != 0 && r.MsgID != "" {
			mb := md.mbox(r.Mailbox)
			if r.UIDValidity != 0 {
				md.uidvSeen(mb, r.UIDValidity, int64(r.Start))
			}
			md.uidSeen(mb, r.UIDValidity, r.UID, md.msg(r.MsgID), int64(r.Start))
		}
	case history.KindIMAPStore, history.KindIMAPExpunge:
		if r.Outcome == history.Fail || r.Mailbox == "" || (r.UID == 0 && r.MsgID == "") {
			return
		}
		a := imapAction{expunge: r.Kind == history.KindIMAPExpunge, ok: ok, mbox: md.mbox(r.Mailbox), uid: r.UID, uidv: r.UIDValidity, msg: none, end: int64(r.End), line: line}
		if r.MsgID != "" {
			a.msg = md.msg(r.MsgID)
		}
		if !a.expunge {
			a.flags = md.flagSet(r.Flags)
		}
		md.actions = append(md.actions, a)
	}
}

// hist is an HDR histogram in microseconds plus the exact maximum, so that
// Max is the measured value rather than its bucket's upper bound.
type hist struct {
	h   *hdrhistogram.Histogram
	max int64 // ns
}

func newHist() *hist { return &hist{h: hdrhistogram.New(1, maxMicros, 3)} }

func (h *hist) record(ns int64) {
	ns = max(ns, 0)
	h.max = max(h.max, ns)
	_ = h.h.RecordValue(clampMicros(ns))
}

const maxMicros = int64(24 * 3600 * 1e6) // one day

func clampMicros(ns int64) int64 {
	us := ns / 1000
	if us < 1 {
		return 1
	}
	return min(us, maxMicros)
}

func (md *model) send(r *history.Record) {
	mi := md.msg(r.MsgID)
	m := &md.msgs[mi]
	if m.sendStart < 0 || int64(r.Start) < m.sendStart {
		m.sendStart = int64(r.Start)
	}
	if r.BodySHA256 != "" && !m.hashKnown() {
		m.hash = md.fingerprint64(r.BodySHA256)
	}
	inc := func(p *uint16) {
		if *p < 0xffff {
			*p++
		}
	}
	att := r.Scope == history.ScopeAttempt
	switch r.Outcome {
	case history.OK:
		if att {
			inc(&m.okAtt)
		} else {
			inc(&m.okOps)
		}
		if m.acceptEnd < 0 || int64(r.End) < m.acceptEnd {
			m.acceptEnd = int64(r.End)
		}
	case history.Indeterminate:
		if att {
			inc(&m.indetAtt)
		} else {
			inc(&m.indetOps)
		}
	default:
		if att {
			inc(&m.failAtt)
		} else {
			inc(&m.failOps)
		}
	}
	for _, rc := range r.Rcpt {
		md.deliv(mi, md.user(rc)).sent = true
	}
}

// uidvSeen notes that mailbox mb had UIDVALIDITY uidv at a time. It keeps
// the span with the pair that indexes the mailbox's UIDs, so that the
// uidSeen that usually follows finds the pair in its one-entry cache.
func (md *model) uidvSeen(mb, uidv uint32, at int64) {
	p, _ := md.pair(mb, uidv, true)
	s := &md.uidvObs[p]
	if !s.observed {
		*s = uidvSpan{at, at, true}
		return
	}
	s.first, s.last = min(s.first, at), max(s.last, at)
}

// UIDs are indexed per (mailbox, uidvalidity) pair. Servers hand out UIDs
// densely from 1, so each pair has a slice indexed by UID holding the
// uidList index + 1 (0: none): one memory access instead of a hash lookup
// in a million-entry map. A UID too far beyond the pair's count for the
// slice to stay small goes to the uids map instead; lookups check both.

// pair returns the interned (mailbox, uidvalidity) pair.
func (md *model) pair(mb, uidv uint32, create bool) (uint32, bool) {
	k := uidvKey{mb, uidv}
	if md.havePair && md.lastPairKey == k {
		return md.lastPair, true
	}
	p, ok := md.pairs[k]
	if !ok {
		if !create {
			return 0, false
		}
		p = uint32(len(md.dense))
		md.pairs[k] = p
		md.dense = append(md.dense, nil)
		md.pairN = append(md.pairN, 0)
		md.pairKeys = append(md.pairKeys, k)
		md.uidvObs = append(md.uidvObs, uidvSpan{})
	}
	md.lastPairKey, md.lastPair, md.havePair = k, p, true
	return p, true
}

// uidFind returns the uidList index of uid in pair p.
func (md *model) uidFind(p, uid uint32) (uint32, bool) {
	if d := md.dense[p]; int(uid) < len(d) && d[uid] != 0 {
		return d[uid] - 1, true
	}
	if len(md.uids) > 0 {
		i, ok := md.uids[uint64(p)<<32|uint64(uid)]
		return i, ok
	}
	return 0, false
}

// uidInsert records that uid in pair p is uidList[i] (not yet indexed).
func (md *model) uidInsert(p, uid, i uint32) {
	md.pairN[p]++
	d := md.dense[p]
	if int(uid) < len(d) {
		d[uid] = i + 1
		return
	}
	limit := 4*uint64(md.pairN[p]) + 64
	if uint64(uid) >= limit {
		if md.uids == nil {
			md.uids = map[uint64]uint32{}
		}
		md.uids[uint64(p)<<32|uint64(uid)] = i
		return
	}
	n := min(max(uint64(uid)+1, 2*uint64(len(d))), limit)
	nd := make([]uint32, n)
	copy(nd, d)
	nd[uid] = i + 1
	md.dense[p] = nd
}

// uidLookup returns the uidList index of (mailbox, uidvalidity, uid).
func (md *model) uidLookup(mb, uidv, uid uint32) (uint32, bool) {
	p, ok := md.pair(mb, uidv, false)
	if !ok {
		return 0, false
	}
	return md.uidFind(p, uid)
}

// uidSeen notes that msg was observed at uid of (mb, uidv) at a time and
// returns the uidList index of the UID.
func (md *model) uidSeen(mb, uidv, uid, msg uint32, at int64) uint32 {
	p, _ := md.pair(mb, uidv, true)
	i, ok := md.uidFind(p, uid)
	if !ok {
		i = uint32(len(md.uidList))
		md.uidInsert(p, uid, i)
		md.uidList = append(md.uidList, uidEntry{pair: p, uid: uid, msg: msg, first: at, last: at})
		return i
	}
	e := &md.uidList[i]
	e.first, e.last = min(e.first, at), max(e.last, at)
	if e.msg != msg && !e.reused {
		e.reused = true
		md.reusedList = append(md.reusedList, i)
	}
	return i
}

func (md *model) observe(line int64, r *history.Record, final bool) {
	md.obsCount++
	mb := md.mbox(r.Mailbox)
	msg := none
	if r.MsgID != "" {
		msg = md.msg(r.MsgID)
	}
	at := int64(r.Start)
	if r.UIDValidity != 0 {
		md.uidvSeen(mb, r.UIDValidity, at)
	}
	entry := md.uidSeen(mb, r.UIDValidity, r.UID, msg, at)
	if msg != none {
		d := md.deliv(msg, md.mboxUser[mb])
		if !final && (d.firstSeen < 0 || at < d.firstSeen) {
			d.firstSeen = at
		}
		if d.firstObs < 0 || at < d.firstObs {
			d.firstObs = at
		}
	}
	if final {
		round := r.Attempt
		if round <= 0 {
			round = 1
		}
		f := finalRec{msg: msg, entry: entry, flags: md.flagSet(r.Flags), round: uint16(min(round, 0xffff)), line: uint32(min(line, 0xffffffff))}
		if r.BodySHA256 != "" && msg != none {
			h := md.fingerprint64(r.BodySHA256)
			switch m := &md.msgs[msg]; {
			case m.hashKnown():
				if h != m.hash {
					f.bits |= fCorrupt
				}
			default:
				md.pendingHash(uint32(len(md.finals)), h)
			}
		}
		md.finals = append(md.finals, f)
	}
}

// pendingHash keeps the body hash of final record i until seal: the
// message's sent hash was not known when the record was read.
func (md *model) pendingHash(i uint32, h uint64) {
	if md.finalHashes == nil {
		md.finalHashes = map[uint32]uint64{}
	}
	md.finalHashes[i] = h
}

// replica returns the state of the replica named name, made on first use.
func (md *model) replica(name string) (uint32, *replicaState) {
	if md.replicaNames.m == nil {
		md.replicaNames = newInterner(&md.arena)
		md.replicaMboxes = newInterner(&md.arena)
	}
	i, isNew := md.replicaNames.id(name)
	if isNew {
		md.replicas = append(md.replicas, replicaState{})
	}
	return i, &md.replicas[i]
}

// replicaFinal keeps a final record of a replica read. It interns the
// message ID (a message may be known only from a replica) but creates no
// delivery and no UID entry: only the replicas check reads it.
func (md *model) replicaFinal(line int64, r *history.Record) {
	rep, _ := md.replica(r.Target)
	mb, _ := md.replicaMboxes.id(r.Mailbox)
	rr := replicaRec{msg: none, mbox: mb, uid: r.UID, line: uint32(min(line, 0xffffffff)), replica: rep, attempt: uint16(min(max(r.Attempt, 1), 0xffff))}
	if r.MsgID != "" {
		rr.msg = md.msg(r.MsgID)
	}
	if r.BodySHA256 != "" {
		rr.hasHash, rr.hash = true, md.fingerprint64(r.BodySHA256)
	}
	md.replicaRecs = append(md.replicaRecs, rr)
}

func (md *model) event(line int64, r *history.Record) {
	switch r.Kind {
	case history.KindFaultInject:
		f := Fault{Index: len(md.faults), Name: md.arena.str(r.Name), Target: md.arena.str(r.Target), Start: r.Start, End: -1, Failed: r.Outcome == history.Fail}
		md.faults = append(md.faults, f)
		k := faultKey{f.Name, f.Target}
		md.pending[k] = append(md.pending[k], f.Index)
	case history.KindFaultHeal:
		k := faultKey{r.Name, r.Target}
		idx := -1
		if q := md.pending[k]; len(q) > 0 {
			idx = q[0]
			md.pending[k] = q[1:]
			f := &md.faults[idx]
			f.End, f.Healed = max(r.End, r.Start), true
			f.Failed = f.Failed || r.Outcome == history.Fail
		}
		md.heals = append(md.heals, heal{fault: idx, name: md.arena.str(r.Name), at: max(int64(r.End), int64(r.Start))})
	case history.KindPhase:
		switch r.Phase() {
		case history.PhaseFinalReadDone:
			round := r.Attempt
			if round <= 0 {
				round = 1
			}
			md.rounds[round] = true
		case history.PhaseReplicaRead:
			md.replica(r.Target) // declared: unjudged until its done event
		case history.PhaseReplicaReadDone:
			_, rs := md.replica(r.Target)
			if a := uint16(min(max(r.Attempt, 1), 0xffff)); a >= rs.done {
				rs.done, rs.doneLine = a, line
			}
		case history.PhaseHeal:
			md.heals = append(md.heals, heal{fault: -1, name: "phase:heal", at: int64(r.Start)})
			md.healPhase = true
		case history.PhaseDone:
			md.done = true
		}
	case history.KindResolve:
		if r.Name == history.ResolveReplicas {
			md.declareReplicas(r.Target)
		}
	}
}
