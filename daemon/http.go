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

	"github.com/weft-net/weft/backend"
)

// metrics are weftd's Prometheus metrics, on a registry of their own.
type metrics struct {
	reg             *prometheus.Registry
	setPeersSeconds prometheus.Histogram
	leaseLosses     prometheus.Counter
}

// gauges are read at scrape time from the daemon's components.
type gauges struct {
	etcdUp         func() float64
	ready          func() float64
	leaseExpiry    func() float64
	gossipMembers  func() float64
	rejectedClaims func() float64
	refused        func() float64
	peersBySource  func() map[string]float64
	peerReachable  func() map[string]float64
	peersRejected  func() map[string]float64
	backend        func() backend.Stats
}

func newMetrics(g gauges) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		setPeersSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "weft_reconcile_duration_seconds", Help: "Duration of the reconciles that program a new peer set (SetPeers).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		leaseLosses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_lease_lost_total", Help: "Times the node's subnet lease was lost (expired or deleted).",
		}),
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	counter := func(name, help string, f func(backend.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f(g.backend())) })
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.setPeersSeconds, m.leaseLosses,
		labeledCounter("weft_reconcile_total", "Reconciles of the VXLAN backend, by trigger: set-peers (a new peer set), event (a kernel change, or the loop's start), resync (the periodic full resync), retry (after a failed one).",
			"trigger", func() map[string]float64 {
				st, out := g.backend(), map[string]float64{}
				for _, t := range backend.Triggers() {
					out[t.String()] = float64(st.Reconciles[t])
				}
				return out
			}),
		counter("weft_reconcile_errors_total", "Reconciles of the VXLAN backend that failed, whatever triggered them.", func(s backend.Stats) uint64 { return s.Failures }),
		counter("weft_kernel_writes_total", "Kernel-changing netlink requests of the VXLAN backend (adds, replaces, deletes, sets): repairs show here.", func(s backend.Stats) uint64 { return s.Writes }),
		counter("weft_device_creations_total", "Creations of the VXLAN device, re-creations after it was deleted or found incompatible included.", func(s backend.Stats) uint64 { return s.DeviceCreates }),
		gauge("weft_etcd_up", "1 while etcd answers, 0 while it does not.", g.etcdUp),
		gauge("weft_ready", "1 while the node is ready (lease held, device up, peers programmed).", g.ready),
		gauge("weft_lease_expiry_timestamp_seconds", "When the node's etcd lease runs out unless renewed.", g.leaseExpiry),
		gauge("weft_gossip_members", "Live gossip members, this node included.", g.gossipMembers),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "weft_gossip_rejected_claims_total", Help: "Gossip claims for a subnet that etcd says another node owns.",
		}, g.rejectedClaims),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "weft_gossip_refused_total", Help: "Gossip announcements refused at admission: no lease names the member, another address than its lease records, or a meta not signed by the key in its lease.",
		}, g.refused),
		labeledGauge("weft_peers", "Peers in the view, by the source of their attributes.", "source", g.peersBySource),
		labeledGauge("weft_peers_rejected", "Leases not programmed as peers, by reason: invalid data, an endpoint this node cannot tunnel to, a conflict with an older lease, or entries the kernel refused.",
			"reason", g.peersRejected),
		labeledGauge("weft_peer_reachable", "1 when the last overlay probe of the peer's VTEP address was answered.", "peer", g.peerReachable),
	)
	return m
}

// labeledCollector is a metric vector of one label whose values are read at scrape time.
type labeledCollector struct {
	desc *prometheus.Desc
	kind prometheus.ValueType
	read func() map[string]float64
}

func labeledGauge(name, help, label string, read func() map[string]float64) prometheus.Collector {
	return &labeledCollector{desc: prometheus.NewDesc(name, help, []string{label}, nil), kind: prometheus.GaugeValue, read: read}
}

func labeledCounter(name, help, label string, read func() map[string]float64) prometheus.Collector {
	return &labeledCollector{desc: prometheus.NewDesc(name, help, []string{label}, nil), kind: prometheus.CounterValue, read: read}
}

func (c *labeledCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *labeledCollector) Collect(ch chan<- prometheus.Metric) {
	for k, v := range c.read() {
		ch <- prometheus.MustNewConstMetric(c.desc, c.kind, v, k)
	}
}

// observeSetPeers records the duration of one SetPeers.
func (m *metrics) observeSetPeers(d time.Duration) { m.setPeersSeconds.Observe(d.Seconds()) }

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
