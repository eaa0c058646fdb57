package history

import (
	"strconv"
	"unicode/utf8"
)

// AppendRecord appends r to dst as one history line, the final newline
// included: the one encoder of records. It writes byte for byte what
// encoding/json's Encoder (SetEscapeHTML(false)) writes for r, fields in
// declaration order, empty ones omitted as the struct tags say. A load generator writes two records per message, and
// encoding/json's reflection cost it more than building the message header;
// encode_test.go checks this against encoding/json over every field.
func AppendRecord(dst []byte, r *Record) ([]byte, error) {
	dst = append(dst, `{"type":`...)
	dst = appendString(dst, string(r.Type))
	dst = appendInt(dst, `,"version":`, int64(r.Version))
	dst = appendField(dst, `,"run_id":`, r.RunID)
	dst = appendInt(dst, `,"seed":`, r.Seed)
	dst = appendField(dst, `,"scenario":`, r.Scenario)
	if !r.BaseTime.IsZero() {
		t, err := r.BaseTime.MarshalJSON()
		if err != nil {
			return dst, err
		}
		dst = append(dst, `,"base_time":`...)
		dst = append(dst, t...)
	}
	dst = appendField(dst, `,"client":`, r.Client)
	dst = appendField(dst, `,"kind":`, string(r.Kind))
	dst = appendField(dst, `,"name":`, r.Name)
	dst = appendField(dst, `,"target":`, r.Target)
	dst = append(dst, `,"start":`...)
	dst = strconv.AppendInt(dst, int64(r.Start), 10)
	dst = appendInt(dst, `,"end":`, int64(r.End))
	dst = appendField(dst, `,"scope":`, string(r.Scope))
	dst = appendInt(dst, `,"attempt":`, int64(r.Attempt))
	dst = appendField(dst, `,"outcome":`, string(r.Outcome))
	dst = appendField(dst, `,"class":`, r.Class)
	dst = appendField(dst, `,"stage":`, r.Stage)
	dst = appendField(dst, `,"detail":`, r.Detail)
	dst = appendField(dst, `,"msg_id":`, r.MsgID)
	dst = appendList(dst, `,"rcpt":`, r.Rcpt)
	dst = appendField(dst, `,"body_sha256":`, r.BodySHA256)
	dst = appendInt(dst, `,"size":`, int64(r.Size))
	dst = appendField(dst, `,"mailbox":`, r.Mailbox)
	dst = appendInt(dst, `,"uidvalidity":`, int64(r.UIDValidity))
	dst = appendInt(dst, `,"uid":`, int64(r.UID))
	dst = appendList(dst, `,"flags":`, r.Flags)
	return append(dst, "}\n"...), nil
}

// appendField appends a string field unless it is empty (omitempty).
func appendField(dst []byte, name, v string) []byte {
	if v == "" {
		return dst
	}
	return appendString(append(dst, name...), v)
}

// appendInt appends an integer field unless it is zero (omitempty).
func appendInt(dst []byte, name string, v int64) []byte {
	if v == 0 {
		return dst
	}
	return strconv.AppendInt(append(dst, name...), v, 10)
}

// appendList appends a list of strings unless it is empty (omitempty).
func appendList(dst []byte, name string, v []string) []byte {
	if len(v) == 0 {
		return dst
	}
	dst = append(dst, name...)
	for i, s := range v {
		dst = append(dst, "[,"[min(i, 1)])
		dst = appendString(dst, s)
	}
	return append(dst, ']')
}

// appendString appends s as a JSON string the way encoding/json does
// without HTML escaping: quote, backslash and control characters escaped,
// invalid UTF-8 as U+FFFD, U+2028 and U+2029 escaped.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && size == 1:
			// Go 1.27's encoding/json (built on json/v2) writes the
			// replacement character itself where Go 1.26 wrote \ufffd.
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\uFFFD"...)
		case c == '\u2028' || c == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"
