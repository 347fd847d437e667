package ctl

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

// fixtureNow is the clock of the tests that show the /debug/peers fixture: its probes ran at
// 03:04:00.
var fixtureNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// serveWeftd serves the health endpoints weftd serves, with /debug/peers from fixture and /readyz
// answering readyCode with readyBody.
func serveWeftd(t *testing.T, fixture string, readyCode int, readyBody string) string {
	t.Helper()
	body, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/peers", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(readyCode)
		_, _ = w.Write([]byte(readyBody + "\n"))
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

func TestPeers(t *testing.T) {
	addr := serveWeftd(t, "testdata/debug-peers.json", http.StatusOK, "ok")
	env := &Env{Now: func() time.Time { return fixtureNow }}
	for _, format := range []string{"table", "wide", "json"} {
		t.Run(format, func(t *testing.T) {
			r := runCtl(t, env, nil, "peers", "-health-addr", addr, "-o", format)
			if r.err != nil {
				t.Fatal(r.err)
			}
			golden(t, "peers-"+format, r.stdout)
		})
	}
	// The health address also comes from weftd's own variable, and as a URL.
	r := runCtl(t, env, map[string]string{"WEFT_HEALTH_ADDR": "http://" + addr + "/"}, "peers")
	if r.err != nil || !strings.Contains(r.stdout, "Node node1") {
		t.Errorf("WEFT_HEALTH_ADDR: %v\n%s", r.err, r.stdout)
	}
}

func TestPeersErrors(t *testing.T) {
	closed := strings.TrimPrefix(closedPort(t), "http://")
	notWeftd := httptest.NewServer(http.NotFoundHandler())
	defer notWeftd.Close()
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("<html>")) }))
	defer garbage.Close()
	for _, tc := range []struct{ addr, want string }{
		{closed, "connection refused"},
		{notWeftd.URL, "HTTP 404"},
		{garbage.URL, "not weftd's peer document"},
	} {
		r := runCtl(t, nil, nil, "peers", "-health-addr", tc.addr)
		if r.err == nil || !strings.Contains(r.err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one containing %q", tc.addr, r.err, tc.want)
		}
	}
}
