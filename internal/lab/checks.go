package lab

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/weft-net/weft/internal/poll"
	"github.com/weft-net/weft/subnet"
)

// WaitReady waits until node's weftd reports ready in its subnet file (WEFT_READY=true).
func (l *Lab) WaitReady(ctx context.Context, node *Node, timeout time.Duration) error {
	_, err := poll.Until(ctx, node.Name+" ready (see "+filepath.Join(node.Dir, "weftd.log")+")", timeout, func() error {
		e, err := subnet.ReadEnvFile(filepath.Join(node.Dir, "subnet.env"))
		if err != nil {
			return err
		}
		if !e.Ready {
			return fmt.Errorf("WEFT_READY=false")
		}
		return nil
	})
	return err
}

// Env reads node's subnet file.
func (l *Lab) Env(node *Node) (*subnet.Env, error) {
	return subnet.ReadEnvFile(filepath.Join(node.Dir, "subnet.env"))
}

// PingMatrix pings every pod from every other pod (three tries each, in parallel per source) and
// returns the errors: m[i][j] is nil when pod i reached pod j.
func (l *Lab) PingMatrix(ctx context.Context) ([][]error, error) {
	pods := l.State().Pods
	m := make([][]error, len(pods))
	var wg sync.WaitGroup
	for i, src := range pods {
		m[i] = make([]error, len(pods))
		n, err := l.netns(src.Netns)
		if err != nil {
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j, dst := range pods {
				if i == j {
					continue
				}
				for try := range 3 {
					if m[i][j] = Ping(n, dst.IP, i*1000+j*3+try, time.Second); m[i][j] == nil {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	return m, ctx.Err()
}

// PodThroughput measures TCP throughput from pod a to pod b for d.
func (l *Lab) PodThroughput(a, b *Pod, d time.Duration) (float64, error) {
	na, err := l.netns(a.Netns)
	if err != nil {
		return 0, err
	}
	nb, err := l.netns(b.Netns)
	if err != nil {
		return 0, err
	}
	return Throughput(na, nb, b.IP, d)
}
