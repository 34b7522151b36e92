package console

import (
	"fmt"
	"net/http"
)

// locale is a page's language: "ja" (the default) or "en". Every label of the console is a key
// of messages, with its text in both.
type locale string

// The languages.
const (
	langJA locale = "ja"
	langEN locale = "en"
)

// langCookie keeps the language an operator chose.
const langCookie = "atodene_console_lang"

// message is one label in both languages.
type message struct{ ja, en string }

// T returns the text of key in l; a key without a text shows as itself in brackets (a test
// keeps every key used defined in both languages).
func (l locale) T(key string) string {
	m, ok := messages[key]
	if !ok {
		return "[" + key + "]"
	}
	if l == langEN {
		return m.en
	}
	return m.ja
}

// F formats the text of key in l with args.
func (l locale) F(key string, args ...any) string { return fmt.Sprintf(l.T(key), args...) }

// Lang is the value of the html element's lang attribute.
func (l locale) Lang() string { return string(l) }

// parseLang reads a language's name.
func parseLang(v string) (locale, bool) {
	switch v {
	case "ja":
		return langJA, true
	case "en":
		return langEN, true
	}
	return "", false
}

// langOf returns the request's language: its lang parameter, else the operator's choice (the
// cookie), else Japanese.
func langOf(r *http.Request) locale {
	if l, ok := parseLang(r.URL.Query().Get("lang")); ok {
		return l
	}
	if c, err := r.Cookie(langCookie); err == nil {
		if l, ok := parseLang(c.Value); ok {
			return l
		}
	}
	return langJA
}

// rememberLang keeps the language a request chose with its lang parameter for the next pages.
func rememberLang(w http.ResponseWriter, r *http.Request) {
	if l, ok := parseLang(r.URL.Query().Get("lang")); ok {
		http.SetCookie(w, &http.Cookie{Name: langCookie, Value: string(l), Path: "/", MaxAge: 365 * 24 * 3600,
			HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
}
