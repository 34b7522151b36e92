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

// URLs returns raw, one URL or a comma-separated list of them, with the user information of
// each (a user and password, or a token written as the user: nats://s3cret@host) replaced by
// Mask, and the values of query parameters that may carry one (password, token, secret, key,
// auth, credentials...) too. A URL that does not parse, or has no host (its credentials would
// not be where a URL keeps them: "user:pw@host:4222", "redis:/pw"), is replaced whole.
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
	if err != nil {
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
// not parse, whatever the part: a password given in the wrong place is still a password.
func Values(msg, rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return Mask
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
