package sip

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// refusal is a request answered with an error before it reaches diago:
// the status, its reason phrase, the Warning text (RFC 3261 20.43: code
// 399, a short fixed text that quotes nothing from the request), extra
// headers, and the metric label.
type refusal struct {
	status int
	reason string
	warn   string
	hdrs   []sip.Header
	check  string // ivr_sip_refused_total{reason}
}

// singleValued are the header fields a request may carry once (RFC 3261
// 7.3.1: not comma-separated lists).
var singleValued = []string{"From", "To", "Call-ID", "CSeq", "Content-Length", "Content-Type", "Max-Forwards"}

// checkRequest refuses what the engine must not hand to the SIP library's
// dialog code, which assumes a well-formed request (a missing From or To
// panics inside diago v0.31.0): every check of RFC 3261 8.2 that applies
// to a user agent server, in its order. ACK is checked too; an ACK is
// never answered, only dropped. nil means the request may go on.
func checkRequest(req *sip.Request) *refusal {
	if req.SipVersion != "SIP/2.0" {
		return &refusal{status: 505, reason: "Version Not Supported", warn: "only SIP/2.0 is supported", check: "version"}
	}
	var missing []string
	if req.From() == nil {
		missing = append(missing, "From")
	}
	if req.To() == nil {
		missing = append(missing, "To")
	}
	if req.CallID() == nil || req.CallID().Value() == "" {
		missing = append(missing, "Call-ID")
	}
	if req.CSeq() == nil {
		missing = append(missing, "CSeq")
	}
	if req.Via() == nil {
		missing = append(missing, "Via")
	}
	if req.IsInvite() && req.Contact() == nil {
		missing = append(missing, "Contact") // RFC 3261 8.1.1.8
	}
	if len(missing) > 0 {
		return &refusal{status: 400, reason: "Bad Request", warn: "missing header " + strings.Join(missing, ", "), check: "missing_header"}
	}
	for _, h := range singleValued {
		if len(req.GetHeaders(h)) > 1 {
			return &refusal{status: 400, reason: "Bad Request", warn: "more than one " + h + " header", check: "duplicate_header"}
		}
	}
	if req.CSeq().MethodName != req.Method {
		return &refusal{status: 400, reason: "Bad Request", warn: "CSeq method differs from the request method", check: "cseq_method"}
	}
	switch strings.ToLower(req.Recipient.Scheme) {
	case "sip", "sips", "tel":
	default:
		return &refusal{status: 416, reason: "Unsupported URI Scheme", warn: "the Request-URI must be sip:, sips: or tel:", check: "uri_scheme"}
	}
	if len(req.Recipient.Headers) > 0 {
		return &refusal{status: 400, reason: "Bad Request", warn: "the Request-URI carries headers", check: "uri_headers"}
	}
	if req.IsAck() || req.IsCancel() {
		return nil
	}
	// RFC 3261 8.2.2.3: the engine supports no extension a client may
	// require (Proxy-Require is for proxies and ignored here).
	if tags := optionTags(req, "Require"); len(tags) > 0 {
		return &refusal{status: 420, reason: "Bad Extension", warn: "no extension is supported",
			hdrs: []sip.Header{sip.NewHeader("Unsupported", strings.Join(tags, ", "))}, check: "require"}
	}
	if req.IsInvite() {
		// RFC 3261 8.2.3: a body the engine cannot read, or an Accept that
		// leaves out the SDP every answer carries.
		if len(req.Body()) > 0 {
			if ct := req.ContentType(); ct == nil || !isSDP(ct.Value()) {
				return &refusal{status: 415, reason: "Unsupported Media Type", warn: "the offer must be application/sdp",
					hdrs: []sip.Header{sip.NewHeader("Accept", "application/sdp")}, check: "content_type"}
			}
		}
		if acc := req.GetHeaders("Accept"); len(acc) > 0 && !acceptsSDP(acc) {
			return &refusal{status: 406, reason: "Not Acceptable", warn: "answers carry application/sdp",
				hdrs: []sip.Header{sip.NewHeader("Accept", "application/sdp")}, check: "accept"}
		}
	}
	return nil
}

// optionTags lists the option tags of header name.
func optionTags(req *sip.Request, name string) []string {
	var tags []string
	for _, h := range req.GetHeaders(name) {
		for _, t := range strings.Split(h.Value(), ",") {
			if t = strings.TrimSpace(t); t != "" {
				tags = append(tags, t)
			}
		}
	}
	return tags
}

func mediaType(v string) string {
	mt, _, _ := strings.Cut(v, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}

func isSDP(contentType string) bool { return mediaType(contentType) == "application/sdp" }

// acceptsSDP reports whether the Accept headers let an answer carry SDP
// (an empty Accept means nothing is accepted, RFC 3261 20.1; none means
// application/sdp).
func acceptsSDP(hs []sip.Header) bool {
	for _, h := range hs {
		for _, v := range strings.Split(h.Value(), ",") {
			switch mediaType(v) {
			case "application/sdp", "application/*", "*/*":
				return true
			}
		}
	}
	return false
}

// compat2543 makes a request of an RFC 2543 client (whose top Via has no
// "z9hG4bK" branch, whose From may have no tag and which may send no
// Contact) something sipgo and diago serve, where they would answer it
// 400 (the transaction layer needs a branch or a From tag, the dialog
// layer a From tag, diago a Contact). It adds to the top Via a branch
// derived from what RFC 3261 17.2.3 matches such requests on (Request-URI,
// From, Call-ID, CSeq number and the top Via itself; not the method and
// not the To tag, so that the ACK of a failure and a CANCEL find the
// INVITE's transaction); to a From without a tag a tag derived from the
// Call-ID and the From address (the same on every request of the call, so
// that its ACK and BYE find the dialog); and a Contact naming the source
// address when there is none. Other datagrams pass untouched: a scan of
// the top Via decides.
func compat2543(data []byte, src net.Addr, parser *sip.Parser) []byte {
	if len(data) < 16 || bytes.HasPrefix(data, []byte("SIP/")) || topViaHasCookie(data) {
		return data
	}
	msg, err := parser.ParseSIP(data)
	if err != nil {
		return data // sipgo's own parse fails the same way and logs it
	}
	req, ok := msg.(*sip.Request)
	if !ok || req.Via() == nil || req.CSeq() == nil || req.CallID() == nil || req.From() == nil {
		return data
	}
	via := req.Via()
	if b, ok := via.Params.Get("branch"); ok && strings.HasPrefix(b, sip.RFC3261BranchMagicCookie) {
		return data
	}
	from := req.From()
	if _, ok := from.Params.Get("tag"); !ok {
		sum := sha256.Sum256([]byte(req.CallID().Value() + "\x00" + from.Address.String()))
		from.Params.Add("tag", "2543"+hex.EncodeToString(sum[:6]))
	}
	h := sha256.New()
	for _, s := range []string{req.Recipient.String(), from.Value(), req.CallID().Value(), via.SentBy()} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	var seq [4]byte
	n := req.CSeq().SeqNo
	seq[0], seq[1], seq[2], seq[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	h.Write(seq[:])
	via.Params.Add("branch", sip.RFC3261BranchMagicCookie+".2543."+hex.EncodeToString(h.Sum(nil)[:12]))
	if req.Contact() == nil {
		if a, ok := src.(*net.UDPAddr); ok {
			req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", Host: a.IP.String(), Port: a.Port}})
		}
	}
	return []byte(req.String())
}

// topViaHasCookie reports whether the first Via header of a raw message
// (name "Via" or "v", any case, value possibly folded over lines) carries
// the RFC 3261 branch cookie in its first hop.
func topViaHasCookie(data []byte) bool {
	for i := 0; i < len(data); {
		end := bytes.IndexByte(data[i:], '\n')
		if end < 0 {
			end = len(data) - i
		}
		line := data[i : i+end]
		if len(bytes.TrimSpace(line)) == 0 && i > 0 {
			return false // end of the headers, no Via
		}
		name, _, ok := bytes.Cut(line, []byte(":"))
		if n := string(bytes.TrimSpace(name)); ok && (strings.EqualFold(n, "via") || strings.EqualFold(n, "v")) {
			// The value, with its continuation lines, up to the first hop's end.
			j := i + end + 1
			for j < len(data) && (data[j] == ' ' || data[j] == '\t') {
				k := bytes.IndexByte(data[j:], '\n')
				if k < 0 {
					j = len(data)
					break
				}
				j += k + 1
			}
			value := data[i+len(name)+1 : min(j, len(data))]
			hop, _, _ := bytes.Cut(value, []byte(","))
			return bytes.Contains(hop, []byte(sip.RFC3261BranchMagicCookie))
		}
		i += end + 1
	}
	return false
}

// newParser is sipgo's parser with the address headers (From, To,
// Contact, Via) tidied: RFC 3261 allows white space around a parameter's
// "=" ("tag = 98asjd8", RFC 4475 wsinv), which sipgo v1.7.2 keeps in the
// parameter's name and value, so that a From tag is not found and the
// transaction layer answers 400.
func newParser() *sip.Parser {
	m := sip.HeadersParser{}
	for k, v := range sip.DefaultHeadersParser() {
		m[k] = v
	}
	for _, name := range []string{"from", "f", "to", "t", "contact", "m", "via", "v"} {
		orig := m[name]
		m[name] = func(headerName []byte, headerData string) (sip.Header, error) {
			h, err := orig(headerName, headerData)
			switch h := h.(type) {
			case *sip.FromHeader:
				h.Params = tidyParams(h.Params)
			case *sip.ToHeader:
				h.Params = tidyParams(h.Params)
			case *sip.ContactHeader:
				h.Params = tidyParams(h.Params)
			case *sip.ViaHeader:
				h.Params = tidyParams(h.Params)
			}
			return h, err
		}
	}
	return sip.NewParser(sip.WithHeadersParsers(m))
}

func tidyParams(ps sip.HeaderParams) sip.HeaderParams {
	out := ps[:0]
	for _, kv := range ps {
		if k := strings.TrimSpace(kv.K); k != "" {
			out = append(out, sip.HeaderKV{K: k, V: strings.TrimSpace(kv.V)})
		}
	}
	return out
}
