// The samples are loaded with the parsers that consume them: the conflist through libcni and the
// plugin's own parser, the network config through weft's validator, and the flags and WEFT_*
// variables of the DaemonSet, the systemd unit and the environment file through weftd's flag parser,
// so that a renamed flag or field breaks this test rather than a node.
//
// This is an external test package: it imports daemon, which package etc must never import.
package etc_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/netip"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/weft-net/weft/internal/flagenv"
	weftetcd "github.com/weft-net/weft/subnet/etcd"

	"github.com/containernetworking/cni/libcni"
	"sigs.k8s.io/yaml"

	"github.com/weft-net/weft/cni"
	"github.com/weft-net/weft/daemon"
	"github.com/weft-net/weft/etc"
	"github.com/weft-net/weft/subnet"
)

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// weftdVars returns the WEFT_* variables weftd reads. flagenv looks one up for every flag not given
// on the command line, so parsing no arguments asks for all of them.
func weftdVars(t *testing.T) map[string]bool {
	t.Helper()
	vars := make(map[string]bool)
	getenv := func(k string) string {
		vars[k] = true
		if k == flagenv.Name("gossip-insecure") {
			return "true" // defaults alone lack a keyring
		}
		return ""
	}
	if _, err := daemon.ParseFlags(nil, getenv, io.Discard); err != nil {
		t.Fatalf("weftd's defaults: %v", err)
	}
	if !vars["WEFT_ETCD_ENDPOINTS"] || !vars["WEFT_NODE_NAME"] {
		t.Fatalf("weftd looked up %v, want at least WEFT_ETCD_ENDPOINTS and WEFT_NODE_NAME", vars)
	}
	return vars
}

// parseWeftd parses a weftd command line with env as its environment, after checking that every
// WEFT_* variable in env names a flag: weftd ignores a variable that names none.
func parseWeftd(t *testing.T, args []string, env map[string]string) *daemon.Config {
	t.Helper()
	known := weftdVars(t)
	for k := range env {
		if strings.HasPrefix(k, "WEFT_") && !known[k] {
			t.Errorf("%s names no weftd flag", k)
		}
	}
	var stderr bytes.Buffer
	cfg, err := daemon.ParseFlags(args, func(k string) string { return env[k] }, &stderr)
	if err != nil {
		t.Fatalf("weftd %q: %v\n%s", args, err, stderr.String())
	}
	return cfg
}

func jsonEqual(t *testing.T, what string, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Errorf("%s differs:\n got %s\nwant %s", what, gb, wb)
	}
}

func TestConflist(t *testing.T) {
	list, err := libcni.ConfListFromBytes(etc.Conflist)
	if err != nil {
		t.Fatal(err)
	}
	if list.Name != "weft" {
		t.Errorf("name = %q, want weft", list.Name)
	}
	// libcni runs the highest version of cniVersions it implements.
	if list.CNIVersion != "1.1.0" {
		t.Errorf("libcni chose cniVersion %q, want 1.1.0", list.CNIVersion)
	}
	var types []string
	for _, p := range list.Plugins {
		types = append(types, p.Network.Type)
	}
	if !slices.Equal(types, []string{"weft", "portmap"}) {
		t.Fatalf("plugins = %q, want weft then portmap", types)
	}
	if !list.Plugins[1].Network.Capabilities["portMappings"] {
		t.Error("portmap does not ask for the portMappings capability: hostPorts would be ignored")
	}

	var raw struct {
		CNIVersion  string   `json:"cniVersion"`
		CNIVersions []string `json:"cniVersions"`
	}
	if err := json.Unmarshal(etc.Conflist, &raw); err != nil {
		t.Fatal(err)
	}
	supported := cni.Versions.SupportedVersions()
	for _, v := range append([]string{raw.CNIVersion}, raw.CNIVersions...) {
		if !slices.Contains(supported, v) {
			t.Errorf("the conflist names cniVersion %s, which the weft plugin does not implement (%v)", v, supported)
		}
		// The weft entry as libcni hands it to the plugin: with the list's name and version.
		conf, err := libcni.InjectConf(list.Plugins[0], map[string]any{"name": list.Name, "cniVersion": v})
		if err != nil {
			t.Fatal(err)
		}
		c, err := cni.ParseConfig(conf.Bytes)
		if err != nil {
			t.Fatalf("cniVersion %s: the weft plugin rejects its entry: %v", v, err)
		}
		want := cni.DefaultConfig()
		if c.Bridge != want.Bridge || c.SubnetFile != want.SubnetFile || c.DataDir != want.DataDir || c.MTU != 0 || !c.HairpinMode {
			t.Errorf("cniVersion %s: plugin config %+v, want the defaults %+v", v, c, want)
		}
	}
	// The plugin reads the subnet file weftd writes by default.
	if subnet.DefaultEnvFile != subnet.DefaultEnvFile {
		t.Errorf("the plugin reads %s, weftd writes %s", subnet.DefaultEnvFile, subnet.DefaultEnvFile)
	}
}

func TestNetConf(t *testing.T) {
	c, err := subnet.ParseConfig(readFile(t, "net-conf.json"))
	if err != nil {
		t.Fatal(err)
	}
	// Usable under flannel's prefix too.
	if err := c.ValidateFlannelShared(); err != nil {
		t.Error(err)
	}
	want := subnet.Config{
		Network: netip.MustParsePrefix("10.244.0.0/16"), SubnetLen: 24,
		SubnetMin: netip.MustParseAddr("10.244.1.0"), SubnetMax: netip.MustParseAddr("10.244.255.0"),
		Backend: subnet.BackendConfig{Type: subnet.BackendVXLAN, VNI: subnet.DefaultVNI, Port: subnet.DefaultPort},
	}
	if *c != want {
		t.Errorf("config = %+v, want %+v", *c, want)
	}
}

// The manifest's objects, with the fields the test reads.
type (
	object struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
		AutomountServiceAccountToken *bool             `json:"automountServiceAccountToken"`
		Data                         map[string]string `json:"data"`
		Spec                         struct {
			Template struct {
				Spec podSpec `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	podSpec struct {
		HostNetwork                  bool                                `json:"hostNetwork"`
		ServiceAccountName           string                              `json:"serviceAccountName"`
		AutomountServiceAccountToken *bool                               `json:"automountServiceAccountToken"`
		Tolerations                  []struct{ Operator, Effect string } `json:"tolerations"`
		InitContainers               []container                         `json:"initContainers"`
		Containers                   []container                         `json:"containers"`
		Volumes                      []volume                            `json:"volumes"`
	}
	container struct {
		Name         string   `json:"name"`
		Image        string   `json:"image"`
		Command      []string `json:"command"`
		Args         []string `json:"args"`
		Env          []envVar `json:"env"`
		VolumeMounts []struct {
			Name      string `json:"name"`
			MountPath string `json:"mountPath"`
		} `json:"volumeMounts"`
		SecurityContext struct {
			Privileged               *bool `json:"privileged"`
			AllowPrivilegeEscalation *bool `json:"allowPrivilegeEscalation"`
			Capabilities             struct {
				Add  []string `json:"add"`
				Drop []string `json:"drop"`
			} `json:"capabilities"`
		} `json:"securityContext"`
		StartupProbe   *probe `json:"startupProbe"`
		LivenessProbe  *probe `json:"livenessProbe"`
		ReadinessProbe *probe `json:"readinessProbe"`
	}
	envVar struct {
		Name      string `json:"name"`
		Value     string `json:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `json:"fieldPath"`
			} `json:"fieldRef"`
			SecretKeyRef *struct {
				Name string `json:"name"`
				Key  string `json:"key"`
			} `json:"secretKeyRef"`
		} `json:"valueFrom"`
	}
	probe struct {
		HTTPGet *struct {
			Host string `json:"host"`
			Port int    `json:"port"`
			Path string `json:"path"`
		} `json:"httpGet"`
	}
	volume struct {
		Name     string `json:"name"`
		HostPath *struct {
			Path string `json:"path"`
		} `json:"hostPath"`
		ConfigMap *struct {
			Name string `json:"name"`
		} `json:"configMap"`
		Secret *struct {
			SecretName string `json:"secretName"`
			Items      []struct {
				Key  string `json:"key"`
				Path string `json:"path"`
			} `json:"items"`
		} `json:"secret"`
	}
)

// loadManifest returns the manifest's objects by kind/name.
func loadManifest(t *testing.T) map[string]*object {
	t.Helper()
	objs := make(map[string]*object)
	for i, doc := range strings.Split(string(readFile(t, "kube-weft.yaml")), "\n---\n") {
		if strings.TrimSpace(strings.TrimPrefix(doc, "---")) == "" || !strings.Contains(doc, "kind:") {
			continue
		}
		o := new(object)
		if err := yaml.Unmarshal([]byte(doc), o); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
			t.Fatalf("document %d lacks apiVersion, kind or metadata.name", i)
		}
		key := o.Kind + "/" + o.Metadata.Name
		if objs[key] != nil {
			t.Fatalf("%s defined twice", key)
		}
		objs[key] = o
	}
	return objs
}

// mountOf returns the volume that holds file in c, and where that volume is mounted.
func (p *podSpec) mountOf(t *testing.T, c *container, file string) (*volume, string) {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if file == m.MountPath || strings.HasPrefix(file, m.MountPath+"/") {
			for i := range p.Volumes {
				if p.Volumes[i].Name == m.Name {
					return &p.Volumes[i], m.MountPath
				}
			}
			t.Fatalf("container %s mounts volume %s, which the pod does not define", c.Name, m.Name)
		}
	}
	t.Fatalf("container %s mounts nothing at %s", c.Name, file)
	return nil, ""
}

// inContainer returns where c sees the host's file (or directory) hostFile, through a hostPath
// volume.
func (p *podSpec) inContainer(t *testing.T, c *container, hostFile string) string {
	t.Helper()
	for _, m := range c.VolumeMounts {
		for _, v := range p.Volumes {
			if v.Name != m.Name || v.HostPath == nil {
				continue
			}
			if rest, ok := strings.CutPrefix(hostFile, v.HostPath.Path); ok && (rest == "" || rest[0] == '/') {
				return m.MountPath + rest
			}
		}
	}
	t.Fatalf("container %s mounts no host path holding %s", c.Name, hostFile)
	return ""
}

// wantHostPath checks that file (or directory) in c is the host's at the same path.
func (p *podSpec) wantHostPath(t *testing.T, c *container, file string) {
	t.Helper()
	if got := p.inContainer(t, c, file); got != file {
		t.Errorf("container %s sees the host's %s at %s, want the same path", c.Name, file, got)
	}
}

// wantSecretFile checks that file in c is key of secret.
func (p *podSpec) wantSecretFile(t *testing.T, c *container, file, secret, key string) {
	t.Helper()
	v, dir := p.mountOf(t, c, file)
	if v.Secret == nil || v.Secret.SecretName != secret {
		t.Errorf("container %s: %s is not in Secret %s", c.Name, file, secret)
		return
	}
	name := strings.TrimPrefix(file, dir+"/")
	if len(v.Secret.Items) == 0 {
		if name != key {
			t.Errorf("container %s: %s is key %s of Secret %s, want %s", c.Name, file, name, secret, key)
		}
		return
	}
	for _, it := range v.Secret.Items {
		if it.Path == name {
			if it.Key != key {
				t.Errorf("container %s: %s is key %s of Secret %s, want %s", c.Name, file, it.Key, secret, key)
			}
			return
		}
	}
	t.Errorf("container %s: Secret %s puts no key at %s", c.Name, secret, file)
}

// wantConfigMapFile checks that file in c is key of the ConfigMap cm.
func (p *podSpec) wantConfigMapFile(t *testing.T, c *container, file, cm, key string) {
	t.Helper()
	v, dir := p.mountOf(t, c, file)
	if v.ConfigMap == nil || v.ConfigMap.Name != cm || strings.TrimPrefix(file, dir+"/") != key {
		t.Errorf("container %s: %s is not key %s of ConfigMap %s", c.Name, file, key, cm)
	}
}

// env renders c's environment as weftd would see it, with a sample value for each valueFrom.
func (c *container) env(t *testing.T) map[string]string {
	t.Helper()
	samples := map[string]string{
		"fieldRef:spec.nodeName":                 "node-1",
		"fieldRef:status.hostIP":                 "192.0.2.21",
		"secretKeyRef:weft-etcd/endpoints":       "https://192.0.2.11:2379,https://192.0.2.12:2379",
		"secretKeyRef:weft-etcd-admin/endpoints": "https://192.0.2.11:2379",
	}
	env := make(map[string]string)
	for _, e := range c.Env {
		v := e.Value
		if f := e.ValueFrom; f != nil {
			var ref string
			switch {
			case f.FieldRef != nil:
				ref = "fieldRef:" + f.FieldRef.FieldPath
			case f.SecretKeyRef != nil:
				ref = "secretKeyRef:" + f.SecretKeyRef.Name + "/" + f.SecretKeyRef.Key
			}
			var ok bool
			if v, ok = samples[ref]; !ok {
				t.Fatalf("container %s: %s comes from %q, which the test has no sample for", c.Name, e.Name, ref)
			}
		}
		if _, dup := env[e.Name]; dup {
			t.Errorf("container %s sets %s twice", c.Name, e.Name)
		}
		env[e.Name] = v
	}
	return env
}

func (c *container) wantCaps(t *testing.T, add ...string) {
	t.Helper()
	sc := c.SecurityContext
	if sc.Privileged != nil && *sc.Privileged {
		t.Errorf("container %s is privileged", c.Name)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("container %s allows privilege escalation", c.Name)
	}
	if !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) {
		t.Errorf("container %s drops capabilities %q, want ALL", c.Name, sc.Capabilities.Drop)
	}
	for _, cp := range add {
		if !slices.Contains(sc.Capabilities.Add, cp) {
			t.Errorf("container %s lacks capability %s (has %q)", c.Name, cp, sc.Capabilities.Add)
		}
	}
}

func TestManifest(t *testing.T) {
	objs := loadManifest(t)
	for _, key := range []string{"Namespace/kube-weft", "ServiceAccount/weft", "ConfigMap/weft-config", "DaemonSet/weft", "Job/weft-net-conf"} {
		if objs[key] == nil {
			t.Fatalf("the manifest has no %s", key)
		}
	}
	for key, o := range objs {
		if o.Kind != "Namespace" && o.Metadata.Namespace != "kube-weft" {
			t.Errorf("%s is in namespace %q, want kube-weft", key, o.Metadata.Namespace)
		}
	}
	if sa := objs["ServiceAccount/weft"]; sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Error("ServiceAccount weft mounts an API token; weft never calls the Kubernetes API")
	}

	cm := objs["ConfigMap/weft-config"]
	jsonEqual(t, "ConfigMap weft-config cni-conf.json vs 10-weft.conflist", []byte(cm.Data["cni-conf.json"]), etc.Conflist)
	jsonEqual(t, "ConfigMap weft-config net-conf.json vs net-conf.json", []byte(cm.Data["net-conf.json"]), readFile(t, "net-conf.json"))

	t.Run("DaemonSet", func(t *testing.T) {
		pod := &objs["DaemonSet/weft"].Spec.Template.Spec
		if !pod.HostNetwork {
			t.Error("hostNetwork is off: weftd must program the node's own network namespace")
		}
		if pod.ServiceAccountName != "weft" {
			t.Errorf("serviceAccountName = %q, want weft", pod.ServiceAccountName)
		}
		if !slices.ContainsFunc(pod.Tolerations, func(tl struct{ Operator, Effect string }) bool {
			return tl.Operator == "Exists" && tl.Effect == ""
		}) {
			t.Error("the DaemonSet does not tolerate every taint: tainted nodes would get no pod network")
		}
		if len(pod.Containers) != 1 || len(pod.InitContainers) != 1 {
			t.Fatalf("%d containers and %d init containers, want 1 and 1", len(pod.Containers), len(pod.InitContainers))
		}
		weftd, install := &pod.Containers[0], &pod.InitContainers[0]
		if weftd.Image != install.Image {
			t.Errorf("weftd runs %s but the plugin comes from %s", weftd.Image, install.Image)
		}
		weftd.wantCaps(t, "NET_ADMIN", "NET_RAW")

		env := weftd.env(t)
		if f := weftd.Env[slices.IndexFunc(weftd.Env, func(e envVar) bool { return e.Name == "WEFT_NODE_NAME" })].ValueFrom; f == nil || f.FieldRef == nil || f.FieldRef.FieldPath != "spec.nodeName" {
			t.Error("WEFT_NODE_NAME does not come from spec.nodeName")
		}
		if len(weftd.Command) == 0 || path.Base(weftd.Command[0]) != "weftd" {
			t.Fatalf("command %q does not run weftd", weftd.Command)
		}
		cfg := parseWeftd(t, append(weftd.Command[1:], weftd.Args...), env)
		if cfg.NodeName != "node-1" || cfg.PublicIP != netip.MustParseAddr("192.0.2.21") ||
			!slices.Equal(cfg.Etcd.Endpoints, []string{"https://192.0.2.11:2379", "https://192.0.2.12:2379"}) {
			t.Errorf("node %q, public IP %s, etcd %q: not the values of the node and Secret weft-etcd", cfg.NodeName, cfg.PublicIP, cfg.Etcd.Endpoints)
		}

		// Host state survives the container.
		for _, p := range []string{path.Dir(cfg.SubnetFile), cfg.StateDir, cni.DefaultDataDir, "/run/xtables.lock"} {
			pod.wantHostPath(t, weftd, p)
		}
		if cfg.SubnetFile != subnet.DefaultEnvFile {
			t.Errorf("weftd writes %s, the conflist's plugin reads %s", cfg.SubnetFile, subnet.DefaultEnvFile)
		}
		pod.wantSecretFile(t, weftd, cfg.Etcd.CAFile, "weft-etcd", "ca.crt")
		pod.wantSecretFile(t, weftd, cfg.Etcd.CertFile, "weft-etcd", "tls.crt")
		pod.wantSecretFile(t, weftd, cfg.Etcd.KeyFile, "weft-etcd", "tls.key")
		pod.wantSecretFile(t, weftd, cfg.GossipKeyFile, "weft-gossip", "keys")

		// Probes: weftd's health endpoints, on the loopback address it listens on.
		health, err := netip.ParseAddrPort(cfg.HealthAddr)
		if err != nil || !health.Addr().IsLoopback() {
			t.Fatalf("-health-addr=%q: want a loopback ip:port", cfg.HealthAddr)
		}
		for _, pr := range []struct {
			name string
			p    *probe
			path string
		}{
			{"startupProbe", weftd.StartupProbe, "/healthz"},
			{"livenessProbe", weftd.LivenessProbe, "/healthz"},
			{"readinessProbe", weftd.ReadinessProbe, "/readyz"},
		} {
			switch g := pr.p; {
			case g == nil || g.HTTPGet == nil:
				t.Errorf("%s: missing or not httpGet", pr.name)
			case g.HTTPGet.Host != health.Addr().String() || g.HTTPGet.Port != int(health.Port()) || g.HTTPGet.Path != pr.path:
				t.Errorf("%s probes http://%s:%d%s, want http://%s%s", pr.name, g.HTTPGet.Host, g.HTTPGet.Port, g.HTTPGet.Path, health, pr.path)
			}
		}

		// The init container copies the plugin and the conflist onto the host.
		install.wantCaps(t)
		script := strings.Join(install.Command, "\n")
		for _, host := range []string{"/opt/cni/bin/weft", "/etc/cni/net.d/10-weft.conflist"} {
			dst := pod.inContainer(t, install, host)
			if !strings.Contains(script, dst) {
				t.Errorf("init container %s does not install %s:\n%s", install.Name, dst, script)
			}
		}
		src := ""
		for _, f := range strings.Fields(script) {
			if strings.HasSuffix(f, "/cni-conf.json") {
				src = f
			}
		}
		if src == "" {
			t.Fatalf("init container %s installs no cni-conf.json", install.Name)
		}
		pod.wantConfigMapFile(t, install, src, "weft-config", "cni-conf.json")
	})

	t.Run("Job", func(t *testing.T) {
		pod := &objs["Job/weft-net-conf"].Spec.Template.Spec
		if !pod.HostNetwork {
			t.Error("the Job needs hostNetwork: the pod network does not exist before weftd runs")
		}
		if len(pod.Containers) != 1 {
			t.Fatalf("%d containers, want 1", len(pod.Containers))
		}
		c := &pod.Containers[0]
		c.wantCaps(t)
		if len(c.Command) != 4 || path.Base(c.Command[0]) != "weftctl" || c.Command[1] != "config" || c.Command[2] != "set" {
			t.Fatalf("command %q, want weftctl config set FILE", c.Command)
		}
		pod.wantConfigMapFile(t, c, c.Command[3], "weft-config", "net-conf.json")
		// weftctl takes weftd's etcd connection flags and variables.
		known := weftdVars(t)
		env := c.env(t)
		for k, v := range env {
			if !strings.HasPrefix(k, "WEFT_ETCD_") || !known[k] {
				t.Errorf("%s=%s is not one of weftd's etcd variables", k, v)
			}
		}
		pod.wantSecretFile(t, c, env["WEFT_ETCD_CA"], "weft-etcd-admin", "ca.crt")
		pod.wantSecretFile(t, c, env["WEFT_ETCD_CERT"], "weft-etcd-admin", "tls.crt")
		pod.wantSecretFile(t, c, env["WEFT_ETCD_KEY"], "weft-etcd-admin", "tls.key")
		if ds := objs["DaemonSet/weft"].Spec.Template.Spec.Containers[0].env(t); env["WEFT_ETCD_PREFIX"] != ds["WEFT_ETCD_PREFIX"] {
			t.Errorf("the Job writes under %q, weftd reads %q", env["WEFT_ETCD_PREFIX"], ds["WEFT_ETCD_PREFIX"])
		}
	})
}

// unit is a systemd unit file: section → key → values, in order.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, data []byte) unit {
	t.Helper()
	u := unit{}
	var section, pending string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := pending + sc.Text()
		pending = ""
		if s, ok := strings.CutSuffix(line, `\`); ok {
			pending = s + " "
			continue
		}
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("line %d: %q is not key=value in a section", n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

func (u unit) one(t *testing.T, section, key string) string {
	t.Helper()
	v := u[section][key]
	if len(v) != 1 {
		t.Fatalf("[%s] %s is set %d times, want once", section, key, len(v))
	}
	return v[0]
}

// parseEnvFile reads KEY=VALUE lines. With examples, the commented-out ones ("#WEFT_X=...") count too.
func parseEnvFile(t *testing.T, data []byte, examples bool) map[string]string {
	t.Helper()
	env := make(map[string]string)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if c, ok := strings.CutPrefix(line, "#WEFT_"); ok && examples {
			line = "WEFT_" + c
		}
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		switch {
		case !ok || k != strings.TrimSpace(k) || v != strings.TrimSpace(v):
			t.Fatalf("line %d: %q is not KEY=VALUE", n, line)
		case strings.ContainsAny(v, `"'$\`):
			t.Fatalf("line %d: %q: quotes, $ and \\ mean different things to systemd and to a shell", n, line)
		case !strings.HasPrefix(k, "WEFT_"):
			t.Fatalf("line %d: %s is not a WEFT_ variable", n, k)
		}
		if _, dup := env[k]; dup {
			t.Fatalf("line %d: %s set twice", n, k)
		}
		env[k] = v
	}
	return env
}

func TestSystemdUnit(t *testing.T) {
	u := parseUnit(t, readFile(t, "weftd.service"))
	envFile := strings.TrimPrefix(u.one(t, "Service", "EnvironmentFile"), "-")
	if path.Base(envFile) != "weftd.env" {
		t.Fatalf("EnvironmentFile=%s, want the sample weftd.env", envFile)
	}
	env := parseEnvFile(t, readFile(t, "weftd.env"), false)
	args := strings.Fields(u.one(t, "Service", "ExecStart"))
	if path.Base(args[0]) != "weftd" {
		t.Fatalf("ExecStart runs %s, want weftd", args[0])
	}
	cfg := parseWeftd(t, args[1:], env)

	// The sandbox leaves exactly weftd's directories writable, and keeps them across restarts.
	if want := "/run/" + u.one(t, "Service", "RuntimeDirectory"); path.Dir(cfg.SubnetFile) != want {
		t.Errorf("-subnet-file=%s is not in RuntimeDirectory %s", cfg.SubnetFile, want)
	}
	if u.one(t, "Service", "RuntimeDirectoryPreserve") != "yes" {
		t.Error("RuntimeDirectoryPreserve is not yes: a restart would delete subnet.env under running pods")
	}
	if want := "/var/lib/" + u.one(t, "Service", "StateDirectory"); cfg.StateDir != want {
		t.Errorf("-state-dir=%s, want StateDirectory %s", cfg.StateDir, want)
	}
	if cfg.SubnetFile != subnet.DefaultEnvFile {
		t.Errorf("weftd writes %s, the conflist's plugin reads %s", cfg.SubnetFile, subnet.DefaultEnvFile)
	}
	if u.one(t, "Service", "ProtectSystem") != "strict" || !slices.Contains(u["Service"]["ReadWritePaths"], "-/run/xtables.lock") {
		t.Error("want ProtectSystem=strict with /run/xtables.lock writable for iptables")
	}
	caps := strings.Fields(u.one(t, "Service", "CapabilityBoundingSet"))
	for _, c := range []string{"CAP_NET_ADMIN", "CAP_NET_RAW"} {
		if !slices.Contains(caps, c) {
			t.Errorf("CapabilityBoundingSet lacks %s", c)
		}
	}
	if h, err := netip.ParseAddrPort(cfg.HealthAddr); err != nil || !h.Addr().IsLoopback() {
		t.Errorf("-health-addr=%q: want a loopback ip:port", cfg.HealthAddr)
	}
	if !strings.Contains(u.one(t, "Service", "ExecReload"), "-HUP $MAINPID") {
		t.Error("ExecReload does not send SIGHUP, which reloads the gossip keys")
	}
	if code, err := strconv.Atoi(u.one(t, "Service", "RestartPreventExitStatus")); err != nil || code != 2 {
		t.Error("RestartPreventExitStatus is not 2, weftd's exit code for bad flags")
	}
}

func TestEnvFile(t *testing.T) {
	data := readFile(t, "weftd.env")
	active := parseEnvFile(t, data, false)
	all := parseEnvFile(t, data, true)
	if len(all) <= len(active) {
		t.Fatalf("no commented-out examples found (%d variables)", len(all))
	}
	for _, env := range []map[string]string{active, all} {
		cfg := parseWeftd(t, []string{"-node-name", "node-1"}, env)
		if cfg.EtcdPrefix != weftetcd.DefaultPrefix || len(cfg.Etcd.Endpoints) != 3 || cfg.GossipKeyFile == "" {
			t.Errorf("prefix %s, endpoints %q, gossip key file %q: not the sample's", cfg.EtcdPrefix, cfg.Etcd.Endpoints, cfg.GossipKeyFile)
		}
	}
}
