// Package redact hides the credentials in server URLs before they are printed: in banners, log
// lines and error messages.
package redact

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Mask replaces a credential.
const Mask = "xxxxx"

// MisplacedMessage says what is wrong with a URL that Misplaced reports, without quoting it.
const MisplacedMessage = "the URL has an '@' after its host: a password holding '/', '?' or '#' must be percent-encoded (%2F, %3F, %23); the value is not quoted: it may hold a credential"

// URLs returns raw, one URL or a comma-separated list of them, with the user information of
// each (a user and password, or a token written as the user: nats://s3cret@host) replaced by
// Mask, and the values of query parameters that may carry one (password, token, secret, key,
// auth, credentials...) too. A URL that does not parse, has no host, or has an '@' after its host
// (its credentials would not be where a URL keeps them: "user:pw@host:4222", "redis:/pw", or a
// password holding an unencoded '/', '?' or '#' after digits, "redis://u:2024/Zx9@host:6379",
// which parses with "2024" as the port and the rest in the path; see Misplaced), is replaced whole.
func URLs(raw string) string {
	if raw == "" {
		return ""
	}
	list := strings.Split(raw, ",")
	for i, one := range list {
		list[i] = redactOne(strings.TrimSpace(one))
	}
	return strings.Join(list, ",")
}

func redactOne(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || misplaced(u) {
		return Mask
	}
	if u.User != nil {
		u.User = url.User(Mask)
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k, vs := range q {
			for i, v := range vs {
				if secretParam(k) {
					vs[i] = Mask
				} else if at := strings.LastIndex(v, "@"); at >= 0 {
					vs[i] = Mask + v[at:] // a user and password in an address (addr=user:pw@host:port)
				}
			}
		}
		u.RawQuery = q.Encode()
	}
	// Without a host, the credentials are not where a URL keeps them: "user:pw@host:4222"
	// parses as the scheme "user" and an opaque part, "redis:/pw" as a path.
	if u.Host == "" {
		return Mask
	}
	return u.String()
}

// Misplaced reports whether raw, one URL, may hold credentials elsewhere than in its user
// information: it has an '@' after its host, in the path, the fragment, a query parameter's name or
// the value of a parameter other than an address (addr=user:pw@host:port) or a secret
// (password=...). A password holding '/', '?' or '#' that is not percent-encoded ends the host
// there: "redis://default:2024/Zx9@redis:6379/0" parses as the host "default:2024" and the path
// "/Zx9@redis:6379/0", and "redis://:12?Zx9@redis:6379" as a query. A URL that does not parse is
// not misplaced (it is refused as it is).
func Misplaced(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && misplaced(u)
}

func misplaced(u *url.URL) bool {
	if strings.Contains(u.Path, "@") || strings.Contains(u.RawPath, "@") || strings.Contains(u.Opaque, "@") ||
		strings.Contains(u.Fragment, "@") || strings.Contains(u.RawFragment, "@") {
		return true
	}
	if !strings.Contains(u.RawQuery, "@") && !strings.Contains(u.RawQuery, "%40") {
		return false
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return true // a part Query drops, which may hold what precedes the '@'
	}
	for k, vs := range q {
		if strings.Contains(k, "@") {
			return true
		}
		for _, v := range vs {
			if strings.Contains(v, "@") && !strings.EqualFold(k, "addr") && !secretParam(k) {
				return true
			}
		}
	}
	return false
}

// Err returns err, or, when err is about a URL that does not parse (a *url.Error, which quotes the
// URL whole, credentials included), an error that names the URL redacted and what is wrong without
// quoting it. what names the URL's setting, e.g. "-redis-url".
func Err(what, rawURL string, err error) error {
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		return fmt.Errorf("%s %s: not a valid URL (the parser's message is left out: it quotes the URL, credentials included)", what, URLs(rawURL))
	}
	return err
}

// Values returns msg, a message about rawURL (a parser's, say), with every value of the URL that
// it quotes replaced by Mask: the user information, the path's segments, the query's values and
// the user information inside them. It is for messages of libraries that quote what they could
// not parse, whatever the part: a password given in the wrong place is still a password. When
// the URL's credentials may be out of its user information (Misplaced), where the password starts
// and ends cannot be told: msg is replaced by a message that quotes nothing.
func Values(msg, rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return Mask
	}
	if misplaced(u) {
		return MisplacedMessage
	}
	var values []string
	if u.User != nil {
		pw, _ := u.User.Password()
		values = append(values, u.User.Username(), pw, u.User.String())
	}
	values = append(values, strings.Split(u.Path, "/")...)
	for _, vs := range u.Query() {
		for _, v := range vs {
			values = append(values, v)
			if at := strings.LastIndex(v, "@"); at >= 0 {
				values = append(values, v[:at])
			}
		}
	}
	// The longest first, so that a value is masked whole before a part of it is.
	slices.SortFunc(values, func(a, b string) int { return len(b) - len(a) })
	for _, v := range values {
		if len(v) >= 2 {
			msg = strings.ReplaceAll(msg, v, Mask)
		}
	}
	return msg
}

func secretParam(name string) bool {
	name = strings.ToLower(name)
	for _, s := range []string{"pass", "pwd", "token", "secret", "key", "auth", "cred", "seed", "nkey", "jwt"} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}
