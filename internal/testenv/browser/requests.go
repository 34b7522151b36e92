package browser

import (
	"net"
	"net/url"
	"strings"

	"github.com/chromedp/cdproto/network"
)

// record is the tab's event listener: it keeps the URL of every request the page is about to
// send (documents, redirects, scripts, styles, images, fonts, fetch and XHR). It runs on
// chromedp's reading goroutine, so it only appends.
func (b *Browser) record(ev any) {
	if ev, ok := ev.(*network.EventRequestWillBeSent); ok && ev.Request != nil {
		b.mu.Lock()
		b.requests = append(b.requests, ev.Request.URL)
		b.mu.Unlock()
	}
}

// Requests returns the URLs of every request the tab has made so far, in order, including each
// hop of a redirect. Requests made after an action returned (a late fetch, a lazy image) appear
// only once the page has made them: wait for what the page shows first. Requests of service
// workers, of cross-site iframes' own subresources and of other tabs are not seen.
func (b *Browser) Requests() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.requests...)
}

// ForeignRequests returns, once each and in the order first made, the URLs of the tab's requests
// (see Requests) that went to any host other than allowedHost. allowedHost is a host ("127.0.0.1"),
// which allows every port of it, or a host and port ("127.0.0.1:8080", as in url.URL.Host), or a
// base URL ("http://127.0.0.1:8080/", such as an httptest.Server's URL), which allows that host and
// port. data:, blob: and about: URLs never count as foreign; a URL that does not parse, or has no
// scheme or no host (file:), always does.
func (b *Browser) ForeignRequests(allowedHost string) []string {
	var foreign []string
	seen := map[string]bool{}
	for _, u := range b.Requests() {
		if !seen[u] && isForeign(u, allowedHost) {
			foreign = append(foreign, u)
		}
		seen[u] = true
	}
	return foreign
}

// isForeign reports whether a request to rawURL leaves allowed (see ForeignRequests).
func isForeign(rawURL, allowed string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return true
	}
	switch strings.ToLower(u.Scheme) {
	case "data", "blob", "about":
		return false
	}
	if u.Scheme == "" || u.Host == "" {
		return true
	}
	if strings.Contains(allowed, "://") {
		if a, err := url.Parse(allowed); err == nil {
			allowed = hostPort(a)
		}
	}
	if _, _, err := net.SplitHostPort(allowed); err != nil {
		// A host without a port: any port of it.
		return !strings.EqualFold(u.Hostname(), strings.Trim(allowed, "[]"))
	}
	return !strings.EqualFold(hostPort(u), allowed)
}

// hostPort returns u's host and port, the port filled in from the scheme where the URL has none.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch strings.ToLower(u.Scheme) {
		case "http", "ws":
			port = "80"
		case "https", "wss":
			port = "443"
		default:
			return u.Host
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}
