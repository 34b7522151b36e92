package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// PutFaults sets the fault injection of the sandbox served at baseURL (e.g.
// http://127.0.0.1:8089) through its admin API, for tools that run it as a separate process.
func PutFaults(ctx context.Context, baseURL string, f Faults) error {
	body, err := json.Marshal(f)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, baseURL+"/sandbox/faults", bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("setting sandbox faults: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("setting sandbox faults: %s%s", resp.Status, adminReason(resp.Body))
	}
	return nil
}

// adminReason returns ": " and the reason of an admin API's refusal ({"error": "..."}, the
// sandbox's own text about the faults asked for), or "" for any other answer: whatever answers at
// baseURL, its body is not echoed into an error.
func adminReason(body io.Reader) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.NewDecoder(io.LimitReader(body, 4<<10)).Decode(&e) != nil || e.Error == "" || len(e.Error) > 300 {
		return ""
	}
	return ": " + e.Error
}
