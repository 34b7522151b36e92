package reliability

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"

	"github.com/atodene-worker/atodene-worker/internal/events"
)

// piiIndex holds every buyer's and consignee's personal data the workload sent, and the secrets,
// so that logs can be searched for them.
type piiIndex struct {
	mu     sync.Mutex
	emails map[string]bool
	phones map[string]bool
	// texts are names, kana readings and addresses (the town part): matched inside runs of
	// Japanese text.
	texts map[string]string // value → kind
	// literals are values matched anywhere in a line, e.g. the corpus's ASCII names and the
	// passwords.
	literals map[string]string // value → kind
}

func newPIIIndex() *piiIndex {
	return &piiIndex{emails: map[string]bool{}, phones: map[string]bool{}, texts: map[string]string{}, literals: map[string]string{}}
}

func (x *piiIndex) addPerson(p events.Person, town string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if p.Email != "" {
		x.emails[strings.ToLower(p.Email)] = true
	}
	x.phones[p.Phone] = true
	x.texts[p.Name] = "name"
	x.texts[strings.ReplaceAll(p.Name, " ", "")] = "name"
	x.texts[p.NameKana] = "name"
	x.texts[town] = "address"
}

func (x *piiIndex) addEmail(e string) string {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.emails[strings.ToLower(e)] = true
	return e
}

func (x *piiIndex) addPhone(p string) string {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.phones[p] = true
	return p
}

// addLiteral adds a value matched anywhere in a line (of at least 6 bytes, so that it cannot
// match by accident).
func (x *piiIndex) addLiteral(v, kind string) {
	if len(v) < 6 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.literals[v] = kind
}

// Hit is one log line that holds personal data or a secret.
type Hit struct {
	File string
	Line int
	Kind string // name, email, phone, address, password, …
	// Excerpt is the matched value, shortened.
	Excerpt string
}

func (h Hit) String() string { return fmt.Sprintf("%s:%d: %s %q", h.File, h.Line, h.Kind, h.Excerpt) }

var (
	emailPattern = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+`)
	phonePattern = regexp.MustCompile(`[0-9]{2,5}-[0-9]{1,4}-[0-9]{3,4}`)
	// japanesePattern finds runs of Japanese text, spaces inside included.
	japanesePattern = regexp.MustCompile(`[\p{Han}\p{Katakana}\p{Hiragana}ー・々]+(?:[ 　]+[\p{Han}\p{Katakana}\p{Hiragana}ー・々]+)*`)
)

// scan reads a log and returns the lines that hold any indexed value.
func (x *piiIndex) scan(file string, r io.Reader) ([]Hit, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	var hits []Hit
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		add := func(kind, v string) {
			if r := []rune(v); len(r) > 40 {
				v = string(r[:40]) + "…"
			}
			hits = append(hits, Hit{File: file, Line: n, Kind: kind, Excerpt: v})
		}
		for _, m := range emailPattern.FindAllString(line, -1) {
			if x.emails[strings.ToLower(m)] {
				add("email", m)
			}
		}
		for _, m := range phonePattern.FindAllString(line, -1) {
			if x.phones[m] {
				add("phone", m)
			}
		}
		for _, run := range japanesePattern.FindAllString(line, -1) {
			for v, kind := range x.texts {
				if strings.Contains(run, v) {
					add(kind, v)
					break
				}
			}
		}
		for v, kind := range x.literals {
			if strings.Contains(line, v) {
				add(kind, v)
			}
		}
	}
	return hits, sc.Err()
}
