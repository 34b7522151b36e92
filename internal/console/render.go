package console

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"

	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

	"github.com/atodene-worker/atodene-worker/internal/jst"
)

// pageTemplate is one page: its own template and, unless it stands alone (print-*.html), the
// layout around it.
type pageTemplate struct {
	t *template.Template
}

// templateFuncs are the functions the templates call besides the locale's.
var templateFuncs = template.FuncMap{
	"jst": jst.Format,
	"yen": humanize.Comma, // an amount with thousands separators: 3155 → 3,155
	"join": func(sep string, s []string) string {
		return strings.Join(s, sep)
	},
}

// parsePages parses every page of templates/.
func parsePages() (map[string]*pageTemplate, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*pageTemplate{}
	for _, full := range names {
		name := strings.TrimPrefix(full, "templates/")
		if name == "layout.html" {
			continue
		}
		files := []string{"templates/layout.html", full}
		if strings.HasPrefix(name, "print-") {
			files = []string{full}
		}
		t, err := template.New(name).Funcs(templateFuncs).ParseFS(templateFS, files...)
		if err != nil {
			return nil, fmt.Errorf("console: parsing %s: %w", name, err)
		}
		pages[name] = &pageTemplate{t: t}
	}
	return pages, nil
}

// view is what every page's template gets: the page's data and what the layout shows.
type view struct {
	L        locale
	Title    string
	Operator string
	// Auto says the operator was logged in automatically (the embedded demo, on loopback).
	Auto bool
	// Proxy says the operator is identified by the trusted header.
	Proxy bool
	CSRF  string
	// LangJA and LangEN are this page's address in each language.
	LangJA, LangEN string
	// Nav is the section of the page, for the navigation.
	Nav string
	// Live says the live updates are on (a JetStream is configured); Since is the last sequence of
	// the outcome stream before the page's data was read (or its action published), from which
	// the page's live stream starts, so that no outcome falls between the page and its stream.
	Live  bool
	Since uint64
	Data  any
}

// sinceKey holds, in a request's context, the outcome stream's last sequence taken before an
// action published (markSince).
type sinceKey struct{}

// markSince notes the outcome stream's last sequence in r's context, before a page's data is read
// from Redis or an action publishes: the page's live stream starts after it, so that an outcome
// published meanwhile is delivered live. The live pages call it first.
func (s *Server) markSince(r *http.Request) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), sinceKey{}, s.resultsSeq(r.Context())))
}

// resultsSeq is the outcome stream's last sequence, or 0 (the live stream then starts with what
// comes next) when it cannot be read.
func (s *Server) resultsSeq(ctx context.Context) uint64 {
	if s.cfg.JetStream == nil {
		return 0
	}
	st, err := s.cfg.JetStream.Stream(ctx, s.cfg.ResultsStream)
	if err != nil {
		return 0
	}
	return st.CachedInfo().State.LastSeq
}

// livePages are the pages that follow the outcomes as they arrive: only they need the stream's
// last sequence (a JetStream API call) when they are rendered.
var livePages = map[string]bool{"orders.html": true, "order.html": true, "action.html": true, "letter-actions.html": true}

// render executes page with data into a buffer, then writes it with status: a template error
// yields a 500 and a log line rather than half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, page, titleKey string, data any) {
	p := s.pages[page]
	if p == nil {
		s.log.Error("no such page template", zap.String("page", page))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	ss := sessionOf(r)
	l := langOf(r)
	v := view{L: l, Title: l.T(titleKey), Operator: ss.Operator, Auto: ss.Via == viaAuto, Proxy: ss.Via == viaHeader,
		LangJA: langURL(r, "ja"), LangEN: langURL(r, "en"), Nav: navOf(page), Live: s.cfg.JetStream != nil && livePages[page], Data: data}
	if since, ok := r.Context().Value(sinceKey{}).(uint64); ok {
		v.Since = since
	} else if v.Live {
		// A live page shown without its data (a confirmation, an error): nothing was read for
		// the stream to catch up on.
		v.Since = s.resultsSeq(r.Context())
	}
	if ss.ID != "" {
		v.CSRF = s.csrfToken(ss)
	}
	var buf bytes.Buffer
	root := "layout"
	if strings.HasPrefix(page, "print-") {
		root = page
	}
	if err := p.t.ExecuteTemplate(&buf, root, v); err != nil {
		s.log.Error("rendering a page failed", zap.String("page", page), zap.Error(err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(showBidi(buf.Bytes()))
}

// bidiControls are the characters that reorder text around them: the embeddings, overrides and
// isolates of Unicode's bidirectional algorithm, and its marks.
var bidiControls = strings.NewReplacer(
	"\u202A", "[U+202A]", "\u202B", "[U+202B]", "\u202C", "[U+202C]", "\u202D", "[U+202D]", "\u202E", "[U+202E]",
	"\u2066", "[U+2066]", "\u2067", "[U+2067]", "\u2068", "[U+2068]", "\u2069", "[U+2069]",
	"\u200E", "[U+200E]", "\u200F", "[U+200F]", "\u061C", "[U+061C]")

// showBidi makes the bidirectional controls in a page visible, as [U+202E]: none is in the
// console's own text, so each comes from a mall, an importer or ATODENE, where a right-to-left
// override shows "evil.exe" as "exe.live". The elements of hostile text are isolated too, so that
// nothing reorders the page around them.
func showBidi(page []byte) []byte {
	if !bytes.ContainsAny(page, "\u202A\u202B\u202C\u202D\u202E\u2066\u2067\u2068\u2069\u200E\u200F\u061C") {
		return page
	}
	return []byte(bidiControls.Replace(string(page)))
}

// navOf is the navigation section of a page.
func navOf(page string) string {
	switch {
	case strings.HasPrefix(page, "order"), strings.HasPrefix(page, "action"), strings.HasPrefix(page, "print-"):
		return "orders"
	case strings.HasPrefix(page, "letter"):
		return "dlq"
	case strings.HasPrefix(page, "shops"):
		return "shops"
	}
	return ""
}

// langURL is the request's address with lang set, for the language switch. A page shown for a
// POST switches on the page it came from, which a GET shows.
func langURL(r *http.Request, lang string) string {
	if r.Method != http.MethodGet {
		path := r.URL.Path
		switch {
		case path == "/actions" || path == "/invoices":
			path = "/orders"
		case path == "/dlq/actions":
			path = "/dlq"
		case path == "/logout":
			path = "/login"
		case strings.HasSuffix(path, "/reveal"), strings.HasSuffix(path, "/edit"):
			path = path[:strings.LastIndexByte(path, '/')]
		}
		return path + "?lang=" + lang
	}
	q := r.URL.Query()
	q.Set("lang", lang)
	return r.URL.Path + "?" + q.Encode()
}

// messageData is the data of message.html: a text (a message key) and, optionally, details.
type messageData struct {
	Text   string
	Detail string
	Back   string
}

// problem renders a page that says what went wrong, with status.
func (s *Server) problem(w http.ResponseWriter, r *http.Request, status int, textKey, detail string) {
	s.render(w, r, status, "message.html", "error.title", messageData{Text: textKey, Detail: detail})
}

// pathWith returns path with the query values, for links.
func pathWith(path string, q url.Values) string {
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}
