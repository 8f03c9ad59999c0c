package redact

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// The table of what is masked and what is not: the one rule, for every
// caller of the package.
func TestText(t *testing.T) {
	tests := []struct {
		in, want string
		kinds    []Kind // what Find reports, in order
	}{
		// National ID numbers: a valid CNP and IDNP, and a 13-digit number
		// with a wrong check digit (still masked, as a number).
		{"CNP 1900101456781, mulțumesc", "CNP **********781, mulțumesc", []Kind{KindNationalID}},
		{"cnp-ul meu e 2900202654320", "cnp-ul meu e **********320", []Kind{KindNationalID}},
		{"IDNP 2002000000019", "IDNP **********019", []Kind{KindNationalID}},
		{"1900101456789", "**********789", []Kind{KindNumber}},
		// Phone numbers, written in the usual ways.
		{"sunați la 0722123456", "sunați la *******456", []Kind{KindPhone}},
		{"0722 123 456", "**** *** 456", []Kind{KindPhone}},
		{"0733-999-888", "****-***-888", []Kind{KindPhone}},
		{"+40722123456", "+********456", []Kind{KindPhone}},
		{"+40 (722) 123-456", "+** (***) ***-456", []Kind{KindPhone}},
		{"0040 722 123 456", "**** *** *** 456", []Kind{KindPhone}},
		{"+373 69 123 456", "+*** ** *** 456", []Kind{KindPhone}},
		{"069123456", "******456", []Kind{KindPhone}},
		{"INVITE sip:0721123456@10.0.0.1 SIP/2.0", "INVITE sip:**********@**.0.0.1 SIP/2.0", []Kind{KindEmail}},
		{"Recipient=sip:0721123456;user=phone", "Recipient=sip:*******456;user=phone", []Kind{KindPhone}},
		// Cards, other long numbers, dates of birth as digits.
		{"card 4111 1111 1111 1111 exp", "card **** **** **** *111 exp", []Kind{KindCard}},
		{`parsing "1990101456788": value out of range`, `parsing "**********788": value out of range`, []Kind{KindNumber}},
		{"account 123456", "account ***456", []Kind{KindNumber}},
		{"born 12.03.1990", "born **.**.*990", []Kind{KindNumber}},
		{"ticket 12345678 and 2026", "ticket *****678 and 2026", []Kind{KindNumber}},
		// E-mail addresses.
		{"scrieți-mi la ion.popescu@example.ro", "scrieți-mi la ***.*******@*******.**", []Kind{KindEmail}},
		{"ion1990@gmail.com", "****990@*****.***", []Kind{KindEmail}},
		// Numbers said in words, Romanian (with and without diacritics) and English.
		{"zero șapte doi unu doi trei", "**** ***** *** unu doi trei", []Kind{KindSpoken}},
		{"e zero sapte doua doi, unu doi trei patru", "e **** ***** **** ***, *** doi trei patru", []Kind{KindSpoken}},
		{"ZERO ŞAPTE DOI unu 2 3", "**** ***** *** unu 2 3", []Kind{KindSpoken}},
		{"my number is oh seven two one, one two three four five six", "my number is ** ***** *** ***, *** *** ***** four five six", []Kind{KindSpoken}},
		{"unu 123456", "*** ***456", []Kind{KindSpoken}},
		// Not personal data: short numbers, addresses, versions, times.
		{"sunați la 112 sau 1919", "sunați la 112 sau 1919", nil},
		{"listening on 127.0.0.1:5060 and 192.168.255.111", "listening on 127.0.0.1:5060 and 192.168.255.111", nil},
		{"SIP/2.0 200 OK", "SIP/2.0 200 OK", nil},
		{"12345", "12345", nil},
		{"unu doi trei patru cinci", "unu doi trei patru cinci", nil},
		{"am un număr de telefon", "am un număr de telefon", nil},
		{"at 10:15:30 on line 42", "at 10:15:30 on line 42", nil},
		{"", "", nil},
	}
	for _, tt := range tests {
		got := Text(tt.in)
		if got != tt.want {
			t.Errorf("Text(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
		var kinds []Kind
		for _, m := range Find(tt.in) {
			kinds = append(kinds, m.Kind)
		}
		if fmt.Sprint(kinds) != fmt.Sprint(tt.kinds) {
			t.Errorf("Find(%q) kinds = %v, want %v", tt.in, kinds, tt.kinds)
		}
	}
}

func TestCheckDigits(t *testing.T) {
	for _, c := range []struct {
		d        string
		cnp, idn bool
	}{
		{"1900101456781", true, false},
		{"1900101456789", false, false},
		{"2900202654320", true, false},
		{"1901301456789", false, false}, // month 13
		{"2002000000019", false, true},
		{"2002000000012", false, false},
		{"123", false, false},
	} {
		if got := ValidCNP(c.d); got != c.cnp {
			t.Errorf("ValidCNP(%s) = %v", c.d, got)
		}
		if got := ValidIDNP(c.d); got != c.idn {
			t.Errorf("ValidIDNP(%s) = %v", c.d, got)
		}
	}
}

func TestMask(t *testing.T) {
	for in, want := range map[string]string{
		"+33612345678":          "+********678",
		"06 12 34 56 78":        "** ** ** *6 78",
		"100":                   "100",
		"12":                    "12",
		"":                      "",
		"sip:alice@example.com": "***:*****@*******.***",
		"alice42":               "*****42",
	} {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

// Typed values never reach a log line or a %v whole; neither does an
// error's text, nor any string given to the handler.
func TestLogValues(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewHandler(slog.NewJSONHandler(&buf, nil), nil))
	log.Info("call", "caller", Phone("+40722123456"), "cnp", NationalID("1900101456781"))
	log.Info(fmt.Sprintf("call from %v", Phone("0722123456")))
	log.Warn("answer failed", "err", errors.New("transmission beginning 'INVITE sip:0721123456@host' is not a SIP message"))
	log.With("peer", "ion.popescu@example.ro").Info("said", slog.Group("turn", "text", "zero șapte doi unu doi trei"), "call_id", "1700000000.123456")
	log.Info("fine", "err", Err(errors.New(`parsing "1990101456789": value out of range`)), "n", 1234567)
	out := buf.String()
	for _, secret := range []string{"40722", "0722123", "1900101", "0721123", "popescu", "zero șapte", "1990101"} {
		if strings.Contains(out, secret) {
			t.Errorf("log leaks %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{"+********456", "**********781", "*******456", `"call_id":"1700000000.123456"`, `"n":1234567`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func BenchmarkText(b *testing.B) {
	clean := "agent registration refused: bad credentials from 127.0.0.1:5090"
	dirty := "transmission beginning 'INVITE sip:0721123456@10.0.0.1 SIP/2.0' is not a SIP message"
	b.ReportAllocs()
	for b.Loop() {
		_ = Text(clean)
		_ = Text(dirty)
	}
}
