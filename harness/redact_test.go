package harness

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

func TestRedactText(t *testing.T) {
	users := []User{
		{Address: "user0001@example.test", Password: "Q7GZ4MXKJ2B5WVDA3RTN6PLEYC"},
		{Address: "user0002@example.test", Password: "pass-0002"},
		{Address: "user0003@example.test", Password: "p3"}, // too short to cut out of every line
	}
	secret := "S3CRETS3CRETS3CRETS3CRET"
	r := newRedactor(users, secret)
	b64 := base64.StdEncoding.EncodeToString
	plain1 := b64([]byte("\x00user0001@example.test\x00Q7GZ4MXKJ2B5WVDA3RTN6PLEYC"))
	plain2 := b64([]byte("user0002@example.test\x00user0002@example.test\x00pass-0002"))
	tests := []struct{ name, in, want string }{
		{"smtp auth plain", "<- AUTH PLAIN " + plain1 + "\r\n", "<- AUTH PLAIN [redacted]\r\n"},
		{"lower-case verb", "auth PLAIN dXNlcgB1c2VyAHNlY3JldA==", "auth PLAIN [redacted]"},
		{"empty initial response", "AUTH PLAIN =", "AUTH PLAIN [redacted]"},
		{"auth login initial response", "AUTH LOGIN dXNlcjAwMDFAZXhhbXBsZS50ZXN0", "AUTH LOGIN [redacted]"},
		{"imap authenticate", "a1 AUTHENTICATE PLAIN " + plain2, "a1 AUTHENTICATE PLAIN [redacted]"},
		{"sasl login answer", "C: " + b64([]byte("Q7GZ4MXKJ2B5WVDA3RTN6PLEYC")), "C: [redacted]"},
		{"plain blob alone", "C: " + plain2, "C: [redacted]"},
		{"imap login", `a2 LOGIN user0002@example.test pass-0002`, `a2 LOGIN user0002@example.test [redacted]`},
		{"password in a file dump", "user0001@example.test:{PLAIN}Q7GZ4MXKJ2B5WVDA3RTN6PLEYC::::::", "user0001@example.test:{PLAIN}[redacted]::::::"},
		{"run secret", "doveadm_password = " + secret, "doveadm_password = [redacted]"},
		{"capability list kept", "250-AUTH PLAIN LOGIN\r\n", "250-AUTH PLAIN LOGIN\r\n"},
		{"mechanisms with digits kept", "250 AUTH CRAM-MD5 SCRAM-SHA-256", "250 AUTH CRAM-MD5 SCRAM-SHA-256"},
		{"imap capability kept", "* CAPABILITY IMAP4rev1 AUTH=PLAIN AUTH=LOGIN", "* CAPABILITY IMAP4rev1 AUTH=PLAIN AUTH=LOGIN"},
		{"postfix warning kept", "warning: unknown[172.18.0.5]: SASL PLAIN authentication failed: UGFzc3dvcmQ6", "warning: unknown[172.18.0.5]: SASL PLAIN authentication failed: UGFzc3dvcmQ6"},
		{"dovecot login line kept", "imap-login: Login: user=<user0001@example.test>, method=PLAIN", "imap-login: Login: user=<user0001@example.test>, method=PLAIN"},
		{"dovecot prose kept", "imap-login: Info: Disconnected: Connection closed (no auth attempts in 0 secs): user=<>", "imap-login: Info: Disconnected: Connection closed (no auth attempts in 0 secs): user=<>"},
		{"an error after AUTH kept", "lost connection after AUTH LOGIN from unknown[172.18.0.1]", "lost connection after AUTH LOGIN from unknown[172.18.0.1]"},
		{"short password left", "LOGIN user0003@example.test p3 at 12:03", "LOGIN user0003@example.test p3 at 12:03"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.text(tt.in); got != tt.want {
				t.Errorf("text(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
	// A run that failed before it had users still takes AUTH payloads out.
	var none *redactor
	if got := none.text("AUTH PLAIN " + plain1); got != "AUTH PLAIN [redacted]" {
		t.Errorf("nil redactor: %q", got)
	}
}

// TestRedactWriter: a secret split across writes, as Docker's log frames
// may split a line, is still found; the last line without its end is
// written by Flush.
func TestRedactWriter(t *testing.T) {
	pw := "Q7GZ4MXKJ2B5WVDA3RTN6PLEYC"
	r := newRedactor([]User{{Address: "u@example.test", Password: pw}})
	var out bytes.Buffer
	w := r.writer(&out)
	for _, chunk := range []string{"first line\nuser u logs in with Q7GZ4MX", "KJ2B5WVDA3RTN6PLEYC here\n", "AUTH PLAIN AGZvbwBiYXI=", ""} {
		if n, err := w.Write([]byte(chunk)); err != nil || n != len(chunk) {
			t.Fatalf("Write(%q) = %d, %v", chunk, n, err)
		}
	}
	if strings.Contains(out.String(), "AUTH PLAIN") {
		t.Errorf("a line without its end was written before Flush: %q", out.String())
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "first line\nuser u logs in with [redacted] here\nAUTH PLAIN [redacted]"
	if out.String() != want {
		t.Errorf("got  %q\nwant %q", out.String(), want)
	}
	if strings.Contains(out.String(), pw) {
		t.Error("the password is in the output")
	}
}
