package smtptoxic

import (
	"strings"
	"testing"
)

func TestParser(t *testing.T) {
	tests := []struct {
		name    string
		session string
		// want is the session prefix up to and including the end of the
		// first message, "" when no message ends.
		want string
	}{
		{"simple", "EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nSubject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n",
			"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nSubject: hi\r\n\r\nbody\r\n.\r\n"},
		{"lowercase data", "data\r\nx\r\n.\r\n", "data\r\nx\r\n.\r\n"},
		{"empty message", "DATA\r\n.\r\n", "DATA\r\n.\r\n"},
		{"dot-stuffed lines are not the end", "DATA\r\n..\r\n.x\r\n..\r\n\r\n.\r\nQUIT\r\n", "DATA\r\n..\r\n.x\r\n..\r\n\r\n.\r\n"},
		{"bare LF dot is not the end", "DATA\r\na\n.\nb\r\n.\r\n", "DATA\r\na\n.\nb\r\n.\r\n"},
		{"CRLF CR is not the end", "DATA\r\na\r\n.\rb\r\n.\r\n", "DATA\r\na\r\n.\rb\r\n.\r\n"},
		{"terminator looks only in DATA", "EHLO x\r\n.\r\nNOOP\r\n", ""},
		{"refused DATA then RSET", "DATA\r\nRSET\r\nNOOP\r\n.\r\n", ""},
		{"refused DATA then a new transaction", "DATA\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\n",
			"DATA\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\n"},
		{"header named like a command is message text", "DATA\r\nMail-From: x\r\n\r\nb\r\n.\r\n", "DATA\r\nMail-From: x\r\n\r\nb\r\n.\r\n"},
		{"BDAT LAST", "BDAT 5\r\nhelloBDAT 3 LAST\r\nabc", "BDAT 5\r\nhelloBDAT 3 LAST\r\nabc"},
		{"BDAT payload with a dot line", "BDAT 5 LAST\r\n\r\n.\r\nQUIT\r\n", "BDAT 5 LAST\r\n\r\n.\r\n"},
		{"STARTTLS makes the stream opaque", "STARTTLS\r\nDATA\r\nx\r\n.\r\n", ""},
		{"DATA with a parameter is not DATA", "DATA x\r\ny\r\n.\r\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Whole, and one byte at a time: chunking must not matter.
			for _, size := range []int{len(tt.session), 1, 2, 3} {
				var p Parser
				got := ""
				for off := 0; off < len(tt.session); off += size {
					chunk := tt.session[off:min(off+size, len(tt.session))]
					if end, ok := p.Feed([]byte(chunk)); ok {
						got = tt.session[:off+end]
						break
					}
				}
				if got != tt.want {
					t.Fatalf("chunk size %d: message ends after %q, want %q", size, got, tt.want)
				}
			}
		})
	}
}

func TestParserTermStart(t *testing.T) {
	var p Parser
	s := "DATA\r\nab\r\n.\r\n"
	end, ok := p.Feed([]byte(s))
	if !ok || end != len(s) {
		t.Fatalf("end = %d, %v", end, ok)
	}
	if got := s[:p.termStart]; got != "DATA\r\nab\r\n" {
		t.Fatalf("before the terminator: %q", got)
	}
	if !strings.HasSuffix(s[p.termStart:], ".\r\n") {
		t.Fatal("terminator start is not the dot")
	}
}
