// Package peers is weftctl peers: a client of weftd's /debug/peers and /readyz on its health address,
// and the renderer of its peer view. doctor uses the client too.
package peers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/weft-net/weft/internal/ctl/cli"
	"github.com/weft-net/weft/internal/nodeapi"
)

// weftd's /debug/peers document.
type (
	debugPeers = nodeapi.Peers
	debugPeer  = nodeapi.Peer
	debugProbe = nodeapi.Probe
)

// healthTimeout bounds each request to weftd's health server.
const healthTimeout = 5 * time.Second

// healthURL is the URL of path on weftd's health server at addr (host:port or a URL).
func healthURL(addr, path string) string {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return strings.TrimSuffix(addr, "/") + path
}

// GetHealth fetches path from weftd's health server and returns the status code and body.
func GetHealth(ctx context.Context, addr, path string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	u := healthURL(addr, path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: -health-addr=%q: %w", cli.ErrUsage, addr, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("weftd's health server: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("reading %s: %w", u, err)
	}
	return resp.StatusCode, body, nil
}

// Fetch reads /debug/peers from weftd at addr.
func Fetch(ctx context.Context, addr string) (*debugPeers, error) {
	code, body, err := GetHealth(ctx, addr, "/debug/peers")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d: %s", healthURL(addr, "/debug/peers"), code, strings.TrimSpace(string(body)))
	}
	return decodePeers(body)
}

// decodePeers parses a /debug/peers document; fields a newer weftd adds are ignored.
func decodePeers(body []byte) (*debugPeers, error) {
	var dp debugPeers
	if err := json.Unmarshal(body, &dp); err != nil {
		return nil, fmt.Errorf("/debug/peers: not weftd's peer document: %w", err)
	}
	return &dp, nil
}

// peerIssues lists where a peer's etcd view, gossip view and probe disagree or fail.
func peerIssues(p *debugPeer) []string {
	var out []string
	g := p.Gossip
	switch {
	case g == nil && p.Etcd.NodeName != "":
		out = append(out, "no gossip member for this weft node")
	case g == nil:
	default:
		if g.Status != nodeapi.MemberAlive {
			out = append(out, "gossip member "+string(g.Status))
		}
		if g.NodeName != p.Etcd.NodeName {
			out = append(out, fmt.Sprintf("node name: etcd %q, gossip %q", p.Etcd.NodeName, g.NodeName))
		}
		if g.PublicIP != p.Etcd.PublicIP {
			out = append(out, fmt.Sprintf("public IP: etcd %s, gossip %s", p.Etcd.PublicIP, g.PublicIP))
		}
		if g.VtepMAC != p.Etcd.VtepMAC {
			out = append(out, fmt.Sprintf("VTEP MAC: etcd %s, gossip %s", p.Etcd.VtepMAC, g.VtepMAC))
		}
	}
	if p.Probe != nil && !p.Probe.Reachable {
		out = append(out, "overlay probe unanswered")
	}
	return out
}

func probeCell(p *debugProbe) string {
	switch {
	case p == nil:
		return "-"
	case p.Reachable:
		return "ok " + p.RTT
	}
	return "FAILED"
}

func ago(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}

func Run(ctx context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlags(env, "peers", "[flags]")
	healthAddr := fs.String("health-addr", nodeapi.DefaultHealthAddr, "weftd's health address (its -health-addr)")
	out := cli.OutputFlag(fs)
	if _, err := cli.Parse(env, fs, args); err != nil {
		return err
	}
	dp, err := Fetch(ctx, *healthAddr)
	if err != nil {
		return err
	}
	if out.Structured() {
		type peerView struct {
			debugPeer
			Issues []string `json:"issues"`
		}
		v := struct {
			debugPeers
			Peers []peerView `json:"peers"`
		}{debugPeers: *dp, Peers: []peerView{}}
		for i := range dp.Peers {
			v.Peers = append(v.Peers, peerView{dp.Peers[i], append([]string{}, peerIssues(&dp.Peers[i])...)})
		}
		return out.Encode(env.Stdout, v)
	}
	return writePeers(env.Stdout, dp, *out == cli.FormatWide, env.Clock())
}

func writePeers(w io.Writer, dp *debugPeers, wide bool, now time.Time) error {
	state := "not ready"
	if dp.Ready {
		state = "ready"
	}
	etcd := "etcd unreachable"
	if dp.EtcdUp {
		etcd = "etcd reachable"
	}
	alive := 0
	for _, m := range dp.Members {
		if m.Status == nodeapi.MemberAlive {
			alive++
		}
	}
	fmt.Fprintf(w, "Node %s, subnet %s: %s, %s; %d peers, %d of %d gossip members alive.\n\n",
		dp.Node, orDash(dp.Subnet), state, etcd, len(dp.Peers), alive, len(dp.Members))
	header := []string{"PEER", "SUBNET", "PUBLIC-IP", "VTEP-MAC", "SOURCE", "GOSSIP", "PROBE"}
	if wide {
		header = append(header, "GOSSIP-ADDR", "ETCD-VERSION", "GOSSIP-VERSION", "PROBED")
	}
	header = append(header, "ISSUES")
	t := cli.NewTable(w, header...)
	flagged := 0
	for i := range dp.Peers {
		p := &dp.Peers[i]
		issues := peerIssues(p)
		if len(issues) > 0 {
			flagged++
		}
		cells := []string{p.Name, p.Subnet.String(), p.PublicIP.String(), p.VtepMAC, string(p.Source), string(p.Liveness),
			probeCell(p.Probe)}
		if wide {
			var addr, gv, probed string
			if g := p.Gossip; g != nil {
				addr, gv = g.Addr.String(), fmt.Sprint(g.AttrVersion)
			}
			if p.Probe != nil {
				probed = ago(p.Probe.At, now)
			}
			cells = append(cells, addr, fmt.Sprint(p.Etcd.AttrVersion), gv, probed)
		}
		t.Row(append(cells, strings.Join(issues, "; "))...)
	}
	if err := t.Flush(); err != nil {
		return err
	}
	rejected, err := writeMembers(w, dp.Members)
	if err != nil {
		return err
	}
	if flagged > 0 {
		fmt.Fprintf(w, "\n%d of %d peers flagged; SOURCE tells whose attributes are programmed (gossip's are newer when they differ).\n", flagged, len(dp.Peers))
	}
	if rejected > 0 {
		fmt.Fprintf(w, "%d gossip claims rejected (!): the member claims a subnet etcd does not give it.\n", rejected)
	}
	return nil
}

// writeMembers writes the gossip members' table, and returns how many claims were rejected.
func writeMembers(w io.Writer, members []nodeapi.Member) (int, error) {
	rejected := 0
	if len(members) == 0 {
		return 0, nil
	}
	fmt.Fprintln(w)
	t := cli.NewTable(w, "MEMBER", "ADDR", "STATUS", "SUBNET", "CLAIM", "REASON")
	for _, m := range members {
		sn := ""
		if m.Subnet.IsValid() {
			sn = m.Subnet.String()
		}
		claim := string(m.Claim)
		if m.Claim == nodeapi.ClaimRejected {
			claim += " (!)"
			rejected++
		}
		t.Row(m.Name, m.Addr.String(), string(m.Status), sn, claim, m.Reason)
	}
	return rejected, t.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
