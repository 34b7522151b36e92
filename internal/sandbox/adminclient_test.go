package sandbox

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestPutFaults(t *testing.T) {
	t.Parallel()
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(func() { s.Close(); srv.Close() })
	if err := PutFaults(context.Background(), srv.URL, Faults{LatencyMS: 7, ErrorRate: 0.25}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(srv.URL + "/sandbox/faults")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got Faults
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.LatencyMS != 7 || got.ErrorRate != 0.25 {
		t.Errorf("faults after PutFaults: %+v", got)
	}
	if err := PutFaults(context.Background(), srv.URL, Faults{ErrorRate: 2}); err == nil {
		t.Error("an impossible error rate was accepted")
	}
}
