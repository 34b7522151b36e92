package browser

import (
	"slices"
	"strings"
	"testing"
)

func TestIsForeign(t *testing.T) {
	for _, tc := range []struct {
		url, allowed string
		foreign      bool
	}{
		{"http://127.0.0.1:8080/orders", "127.0.0.1:8080", false},
		{"http://127.0.0.1:8080/orders", "http://127.0.0.1:8080", false},
		{"http://127.0.0.1:8080/orders", "http://127.0.0.1:8080/console/", false},
		{"ws://127.0.0.1:8080/live", "127.0.0.1:8080", false},
		{"http://127.0.0.1:9090/", "127.0.0.1:8080", true}, // another port is another origin
		{"http://127.0.0.1:9090/", "127.0.0.1", false},     // a host alone allows every port
		{"http://LOCALHOST/", "localhost:80", false},
		{"https://localhost/", "localhost:80", true},
		{"https://localhost/", "https://localhost", false},
		{"http://[::1]:8080/", "[::1]:8080", false},
		{"http://[::1]:8080/", "::1", false},
		{"http://example.invalid/logo.png", "127.0.0.1:8080", true},
		{"https://fonts.googleapis.com/css2?family=Noto+Sans+JP", "127.0.0.1:8080", true},
		{"data:image/gif;base64,R0lGOD", "127.0.0.1:8080", false},
		{"blob:http://127.0.0.1:8080/0b7e2c1a", "127.0.0.1:8080", false},
		{"about:blank", "127.0.0.1:8080", false},
		{"//127.0.0.1:8080/x", "127.0.0.1:8080", true}, // no scheme: not what a browser requests
		{"http://%zz/", "127.0.0.1:8080", true},        // does not parse
		{"file:///etc/passwd", "127.0.0.1:8080", true},
	} {
		if got := isForeign(tc.url, tc.allowed); got != tc.foreign {
			t.Errorf("isForeign(%q, %q) = %v, want %v", tc.url, tc.allowed, got, tc.foreign)
		}
	}
}

func TestForeignRequestsOncePerURLInOrder(t *testing.T) {
	b := &Browser{requests: []string{
		"http://127.0.0.1:8080/", "https://cdn.example.com/a.js", "data:,x",
		"https://cdn.example.com/a.js", "http://example.invalid/logo.png", "http://127.0.0.1:8080/api",
	}}
	want := []string{"https://cdn.example.com/a.js", "http://example.invalid/logo.png"}
	if got := b.ForeignRequests("127.0.0.1:8080"); !slices.Equal(got, want) {
		t.Errorf("ForeignRequests = %q, want %q", got, want)
	}
	if got := b.ForeignRequests("127.0.0.1:8080"); !slices.Equal(got, want) {
		t.Errorf("a second call = %q, want the same %q", got, want)
	}
}

func TestPDFPageCount(t *testing.T) {
	for _, tc := range []struct {
		name string
		pdf  string
		want int
	}{
		{"not a PDF", "/Type /Page /Type /Page", 0},
		{"empty", "", 0},
		{"no pages", "%PDF-1.4\n1 0 obj\n<</Type /Catalog /Pages 2 0 R>>\nendobj\n2 0 obj\n<</Type /Pages /Count 0 /Kids []>>\nendobj\n", 0},
		{"two pages", "%PDF-1.4\n2 0 obj\n<</Type /Pages /Count 2 /Kids [3 0 R 4 0 R]>>\nendobj\n" +
			"3 0 obj\n<</Type /Page\n/Parent 2 0 R>>\nendobj\n4 0 obj\n<</Type /Page /Parent 2 0 R>>\nendobj\n", 2},
		{"no spaces", "%PDF-1.7\n<</Type/Pages/Kids[3 0 R]>><</Type/Page/Parent 2 0 R>>", 1},
		{"page at the end", "%PDF-1.7\n<</Type /Page", 1},
		{"page followed by a delimiter", "%PDF-1.7\n<</Type /Page>><</Type /Page/Parent 2 0 R>><</Type /Page[", 3},
		{"other names starting with Page", "%PDF-1.7\n<</Type /PageLabel>><</Type /Pages>>", 0},
		{"spread over lines", "%PDF-1.7\n<</Type\n/Page\n>>", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := PDFPageCount([]byte(tc.pdf)); got != tc.want {
				t.Errorf("PDFPageCount = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"orders":           "orders",
		"受注一覧 page 2":      "受注一覧_page_2",
		"../../etc/passwd": ".._.._etc_passwd",
		"..":               "__",
		"":                 "_",
		"a:b*c?":           "a_b_c_",
	} {
		if got := sanitize(in); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
	if got := sanitizePath("TestConsole/受注_一覧/.."); !slices.Equal(got, []string{"TestConsole", "受注_一覧", "__"}) {
		t.Errorf("sanitizePath = %q", got)
	}
}

func TestTailBufferKeepsTheEndWithoutDBusNoise(t *testing.T) {
	w := &tailBuffer{limit: 64}
	w.Write([]byte("first line, to be dropped for length\n"))
	w.Write([]byte("[1:2:ERROR:dbus/bus.cc:405] Failed to connect\n"))
	w.Write([]byte("renderer crashed\n"))
	got := w.String()
	if strings.Contains(got, "first line") || strings.Contains(got, "dbus") || !strings.HasSuffix(got, "renderer crashed\n") {
		t.Errorf("tail = %q", got)
	}
}
