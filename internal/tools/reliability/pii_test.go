package reliability

import (
	"strings"
	"testing"

	"github.com/atodene-worker/atodene-worker/internal/events"
)

func TestScanFindsPersonalDataAndSecrets(t *testing.T) {
	t.Parallel()
	x := newPIIIndex()
	x.addPerson(events.Person{Name: "佐藤 太郎", NameKana: "サトウ タロウ", Phone: "090-1234-5678", Email: "Taro.Sato.x1@example.jp"}, "東京都渋谷区神宮前")
	x.addLiteral("relPw-0123456789abcdef", "password")
	x.addLiteral("short", "password") // too short to be matched anywhere
	logs := strings.Join([]string{
		`{"level":"info","msg":"message handled","event_id":"e1","order":"ABC-1","outcome":"ok"}`,
		`{"level":"warn","msg":"x","error":"buyer taro.sato.x1@example.jp refused"}`,
		`{"level":"warn","msg":"x","error":"tel 090-1234-5678"}`,
		`{"level":"warn","msg":"x","error":"name 佐藤 太郎 is too long"}`,
		`{"level":"warn","msg":"x","error":"kana サトウ タロウ"}`,
		`{"level":"warn","msg":"x","error":"address 東京都渋谷区神宮前1-2-3"}`,
		`{"level":"info","msg":"x","link":"relPw-0123456789abcdef"}`,
		`{"level":"info","msg":"tracking 400000120003 transaction 12345678901 short"}`,
		`{"level":"info","msg":"佐藤 alone is no hit, nor is 東京都"}`,
	}, "\n")
	hits, err := x.scan("worker-1.log", strings.NewReader(logs))
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{2: "email", 3: "phone", 4: "name", 5: "name", 6: "address", 7: "password"}
	got := map[int]string{}
	for _, h := range hits {
		got[h.Line] = h.Kind
		if h.File != "worker-1.log" {
			t.Errorf("hit %v: file", h)
		}
	}
	if len(got) != len(want) {
		t.Errorf("hits %v, want lines %v", hits, want)
	}
	for line, kind := range want {
		if got[line] != kind {
			t.Errorf("line %d: got %q, want %q (hits %v)", line, got[line], kind, hits)
		}
	}
}
