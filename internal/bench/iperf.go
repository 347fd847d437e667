package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/weft-net/weft/internal/nsutil"
)

// ErrIperf marks an iperf3 run that produced no figure.
var ErrIperf = errors.New("iperf3")

const iperfPort = 5201

// iperfResult is the part of iperf3's -J output the bench reads.
type iperfResult struct {
	End struct {
		SumReceived struct {
			Seconds       float64 `json:"seconds"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// parseIperf returns the receiver's throughput in bits/s from iperf3 -J output.
func parseIperf(out []byte) (float64, error) {
	var r iperfResult
	if err := json.Unmarshal(out, &r); err != nil {
		return 0, fmt.Errorf("%w: output is not iperf3 JSON: %w", ErrIperf, err)
	}
	if r.Error != "" {
		return 0, fmt.Errorf("%w: %s", ErrIperf, r.Error)
	}
	if r.End.SumReceived.Seconds <= 0 || r.End.SumReceived.BitsPerSecond <= 0 {
		return 0, fmt.Errorf("%w: end.sum_received has no data", ErrIperf)
	}
	return r.End.SumReceived.BitsPerSecond, nil
}

// startIperfServer runs `iperf3 -s` in n until the registry stops it; its pid file under dir marks
// it as the run's for the crash sweep. It returns once the server accepts connections.
func startIperfServer(ctx context.Context, reg *registry, n ns.NetNS, at netip.Addr, dir, name string) (*exec.Cmd, error) {
	cmd := exec.Command("iperf3", "-s", "-p", strconv.Itoa(iperfPort), "--pidfile", filepath.Join(dir, "iperf3-"+name+".pid"))
	if err := reg.start(n, cmd); err != nil {
		return nil, fmt.Errorf("%w: server in %s: %w", ErrIperf, name, err)
	}
	addr := netip.AddrPortFrom(at, iperfPort).String()
	dial := nsutil.Dialer(n)
	deadline := time.Now().Add(10 * time.Second)
	for {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		c, err := dial(dctx, "tcp", addr)
		cancel()
		if err == nil {
			c.Close()
			return cmd, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("%w: server in %s does not answer at %s: %w", ErrIperf, name, addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// iperfClient runs one TCP stream from n to dst for secs measured seconds (after one omitted
// second) and returns the receiver's bits/s.
func iperfClient(ctx context.Context, n ns.NetNS, dst netip.Addr, d time.Duration) (float64, error) {
	secs := strconv.Itoa(int(d.Round(time.Second) / time.Second))
	cmd := exec.CommandContext(ctx, "iperf3", "-c", dst.String(), "-p", strconv.Itoa(iperfPort), "-t", secs, "-O", "1", "-J")
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := nsutil.Start(n, cmd); err != nil {
		return 0, fmt.Errorf("%w: client to %s: %w", ErrIperf, dst, err)
	}
	err := cmd.Wait()
	bps, perr := parseIperf(out.Bytes())
	if perr != nil {
		return 0, errors.Join(fmt.Errorf("client to %s: %w", dst, perr), err)
	}
	return bps, nil
}
