package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are weftd's Prometheus metrics, on a registry of their own.
type metrics struct {
	reg               *prometheus.Registry
	reconciles        prometheus.Counter
	reconcileErrors   prometheus.Counter
	reconcileDuration prometheus.Histogram
	leaseLosses       prometheus.Counter
}

// gauges are read at scrape time from the daemon's components.
type gauges struct {
	etcdUp         func() float64
	ready          func() float64
	leaseExpiry    func() float64
	gossipMembers  func() float64
	rejectedClaims func() float64
	peersBySource  func() map[string]float64
	peerReachable  func() map[string]float64
}

func newMetrics(g gauges) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		reconciles: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_reconcile_total", Help: "Peer-set reconciles of the VXLAN backend.",
		}),
		reconcileErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_reconcile_errors_total", Help: "Reconciles that returned an error.",
		}),
		reconcileDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "weft_reconcile_duration_seconds", Help: "Duration of peer-set reconciles.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		leaseLosses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_lease_lost_total", Help: "Times the node's subnet lease was lost (expired or deleted).",
		}),
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.reconciles, m.reconcileErrors, m.reconcileDuration, m.leaseLosses,
		gauge("weft_etcd_up", "1 while etcd answers, 0 while it does not.", g.etcdUp),
		gauge("weft_ready", "1 while the node is ready (lease held, device up, peers programmed).", g.ready),
		gauge("weft_lease_expiry_timestamp_seconds", "When the node's etcd lease runs out unless renewed.", g.leaseExpiry),
		gauge("weft_gossip_members", "Live gossip members, this node included.", g.gossipMembers),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "weft_gossip_rejected_claims_total", Help: "Gossip claims for a subnet that etcd says another node owns.",
		}, g.rejectedClaims),
		labeledGauge("weft_peers", "Peers in the view, by the source of their attributes.", "source", g.peersBySource),
		labeledGauge("weft_peer_reachable", "1 when the last overlay probe of the peer's VTEP address was answered.", "peer", g.peerReachable),
	)
	return m
}

// labeledGauge is a gauge vector read at scrape time.
type labeledGaugeCollector struct {
	desc *prometheus.Desc
	read func() map[string]float64
}

func labeledGauge(name, help, label string, read func() map[string]float64) prometheus.Collector {
	return &labeledGaugeCollector{desc: prometheus.NewDesc(name, help, []string{label}, nil), read: read}
}

func (c *labeledGaugeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *labeledGaugeCollector) Collect(ch chan<- prometheus.Metric) {
	for k, v := range c.read() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, k)
	}
}

// observeReconcile records one reconcile.
func (m *metrics) observeReconcile(d time.Duration, err error) {
	m.reconciles.Inc()
	m.reconcileDuration.Observe(d.Seconds())
	if err != nil {
		m.reconcileErrors.Inc()
	}
}

// healthServer serves /healthz, /readyz, /metrics and /debug/peers.
type healthServer struct {
	addr    string
	log     *slog.Logger
	live    func() error
	ready   func() error
	peers   func() any
	metrics *metrics
}

func (s *healthServer) handler() http.Handler {
	mux := http.NewServeMux()
	check := func(f func() error) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			if err := f(); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			_, _ = w.Write([]byte("ok\n"))
		}
	}
	mux.HandleFunc("GET /healthz", check(s.live))
	mux.HandleFunc("GET /readyz", check(s.ready))
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /debug/peers", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s.peers())
	})
	return mux
}

// Run serves until ctx ends.
func (s *healthServer) Run(ctx context.Context) error {
	if s.addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	s.log.Info("serving health, metrics and debug endpoints", "addr", ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
