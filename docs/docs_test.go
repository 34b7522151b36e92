// The tests of this directory keep the documentation's references true: every link between the
// pages and every docs/<page>.md#<section> that the code cites leads somewhere, and nothing in the
// repository sends its reader to notes it does not hold. The facts of the pages are checked
// beside the code they describe (internal/config, internal/events, internal/worker).
package docs_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// root is the repository, seen from this directory.
const root = ".."

// anchors returns the anchors of a Markdown page's headings, as GitHub makes them: lower case,
// punctuation dropped, spaces made hyphens, a repeated heading numbered -1, -2.
func anchors(t *testing.T, page string) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, l := range strings.Split(stripFences(string(raw)), "\n") {
		heading, ok := strings.CutPrefix(strings.TrimLeft(l, "#"), " ")
		if !ok || !strings.HasPrefix(l, "#") {
			continue
		}
		var b strings.Builder
		for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.IsMark(r):
				b.WriteRune(r)
			}
		}
		a := b.String()
		for n := 1; out[a]; n++ {
			a = b.String() + "-" + strconv.Itoa(n)
		}
		out[a] = true
	}
	return out
}

// stripFences blanks the fenced blocks of a Markdown text, keeping its lines.
func stripFences(text string) string {
	var out []string
	fenced := false
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			fenced = !fenced
			l = ""
		}
		if fenced {
			l = ""
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// stripCode blanks the fenced blocks and code spans of a Markdown text, keeping its lines.
func stripCode(text string) string {
	return codeSpan.ReplaceAllString(stripFences(text), "``")
}

var (
	codeSpan = regexp.MustCompile("`[^`]*`")
	mdLink   = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	// docRef is a page of docs/ named from anywhere: in code, in comments, in other pages.
	docRef = regexp.MustCompile(`\bdocs/([a-z0-9-]+\.md)(#[\p{L}\p{N}_-]+)?`)
)

// pages returns the Markdown pages of the repository: README.md and docs/*.md.
func pages(t *testing.T) []string {
	t.Helper()
	docs, err := filepath.Glob("*.md")
	if err != nil || len(docs) == 0 {
		t.Fatalf("no pages in docs/: %v", err)
	}
	return append(docs, filepath.Join(root, "README.md"))
}

// resolve checks that target, a link from the page at from, names a file or directory of the
// repository and, with a #section, a heading of that page. It returns what is wrong, or "".
func resolve(t *testing.T, from, target string, cache map[string]map[string]bool) string {
	t.Helper()
	path, section, _ := strings.Cut(target, "#")
	file := from
	if path != "" {
		file = filepath.Join(filepath.Dir(from), path)
	}
	info, err := os.Stat(file)
	if err != nil {
		return "no such file " + file
	}
	if section == "" {
		return ""
	}
	if info.IsDir() || !strings.HasSuffix(file, ".md") {
		return "a section of something that is not a page"
	}
	if cache[file] == nil {
		cache[file] = anchors(t, file)
	}
	if !cache[file][section] {
		return "no section #" + section + " in " + file
	}
	return ""
}

// TestLinksBetweenPages: every relative link of README.md and docs/*.md leads to a file of the
// repository and, with a #section, to a heading of that page.
func TestLinksBetweenPages(t *testing.T) {
	t.Parallel()
	cache := map[string]map[string]bool{}
	links := 0
	for _, page := range pages(t) {
		raw, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for n, l := range strings.Split(stripCode(string(raw)), "\n") {
			for _, m := range mdLink.FindAllStringSubmatch(l, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				links++
				if what := resolve(t, page, target, cache); what != "" {
					t.Errorf("%s:%d: link %s: %s", page, n+1, target, what)
				}
			}
		}
	}
	if links < 50 {
		t.Errorf("only %d links found: the link pattern no longer reads the pages", links)
	}
}

// repositoryFiles returns the text files of the repository (not .git, nor the data of embedded
// servers or builds).
func repositoryFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "data", "bin", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		if info, err := d.Info(); err != nil || !info.Mode().IsRegular() || info.Size() > 2<<20 {
			return err
		}
		files = append(files, path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestReferencesToPages: every docs/<page>.md and docs/<page>.md#<section> named in the
// repository's files (code comments, error messages, pages) leads to a page and a heading of it.
func TestReferencesToPages(t *testing.T) {
	t.Parallel()
	cache := map[string]map[string]bool{}
	refs := 0
	for _, f := range repositoryFiles(t) {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !utf8.Valid(raw) || !strings.Contains(string(raw), "docs/") {
			continue
		}
		for n, l := range strings.Split(string(raw), "\n") {
			if !strings.Contains(l, "docs/") {
				continue
			}
			for _, m := range docRef.FindAllStringSubmatch(l, -1) {
				refs++
				if what := resolve(t, filepath.Join(root, "docs", m[1]), m[2], cache); what != "" {
					t.Errorf("%s:%d: %s: %s", f, n+1, m[0], what)
				}
			}
		}
	}
	if refs < 50 {
		t.Errorf("only %d references to docs/ found: the pattern no longer reads the code", refs)
	}
}

// outside are references to what the repository does not hold: notes kept elsewhere, and the
// trackers of the work that built it. The repository speaks of the product, from its own pages.
var outside = []*regexp.Regexp{
	regexp.MustCompile(`\b(DESIGN|API)\.md\b`),
	regexp.MustCompile(`\b(DESIGN|API) §`),
	regexp.MustCompile(`(?i)\bissue \d+`),
}

// TestNoReferencesOutsideTheRepository: no file cites notes the repository does not hold.
func TestNoReferencesOutsideTheRepository(t *testing.T) {
	t.Parallel()
	self, err := filepath.Abs("docs_test.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range repositoryFiles(t) {
		if abs, _ := filepath.Abs(f); abs == self {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !utf8.Valid(raw) {
			continue
		}
		for n, l := range strings.Split(string(raw), "\n") {
			if !strings.Contains(l, "DESIGN") && !strings.Contains(l, "API") && !strings.Contains(strings.ToLower(l), "issue") {
				continue // the patterns below need one of these
			}
			if i := slices.IndexFunc(outside, func(re *regexp.Regexp) bool { return re.MatchString(l) }); i >= 0 {
				t.Errorf("%s:%d: %q refers to what the repository does not hold; cite its own docs/ instead", f, n+1, outside[i].FindString(l))
			}
		}
	}
}
