package peers

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/weft-net/weft/internal/ctl/cli"
	"github.com/weft-net/weft/internal/ctl/ctltest"
)

func TestPeers(t *testing.T) {
	addr := ctltest.ServeWeftd(t, "debug-peers.json", http.StatusOK, "ok")
	env := &cli.Env{Now: func() time.Time { return ctltest.FixtureNow }}
	for _, format := range []string{"table", "wide", "json"} {
		t.Run(format, func(t *testing.T) {
			r := runCtl(t, env, nil, "peers", "-health-addr", addr, "-o", format)
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			ctltest.Golden(t, "peers-"+format, r.Stdout)
		})
	}
	// The health address also comes from weftd's own variable, and as a URL.
	r := runCtl(t, env, map[string]string{"WEFT_HEALTH_ADDR": "http://" + addr + "/"}, "peers")
	if r.Err != nil || !strings.Contains(r.Stdout, "Node node1") {
		t.Errorf("WEFT_HEALTH_ADDR: %v\n%s", r.Err, r.Stdout)
	}
}

func TestPeersErrors(t *testing.T) {
	closed := strings.TrimPrefix(ctltest.ClosedPort(t), "http://")
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
		if r.Err == nil || !strings.Contains(r.Err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one containing %q", tc.addr, r.Err, tc.want)
		}
	}
}

func FuzzDecodePeers(f *testing.F) {
	f.Add(`{"node":"n1","peers":[{"name":"n2","subnet":"10.244.2.0/24","gossip":{"status":"gone"},"probe":{"reachable":false}}],"members":[{"name":"x","claim":"rejected"}]}`)
	f.Add(`{"peers":[{"subnet":"bad"}]}`)
	f.Add(`null`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, body string) {
		dp, err := decodePeers([]byte(body))
		if err != nil {
			return
		}
		var b strings.Builder
		if err := writePeers(&b, dp, true, ctltest.FixtureNow); err != nil {
			t.Error(err)
		}
	})
}
