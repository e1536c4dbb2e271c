// Package deploycheck holds Ferry's Kubernetes manifests (deploy/kubernetes)
// and Helm chart (deploy/helm/ferry) to what Ferry needs of a platform:
// probes on the metrics port, a grace period that covers the drain
// arithmetic, a non-root read-only container with somewhere to write, and
// objects that select each other. It is a test-only tool (tools module).
package deploycheck

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// Ferry's defaults (internal/config/drain.go): what applies when the
// manifest does not pass the flag.
const (
	defaultDrainDelay      = 5 * time.Second
	defaultShutdownTimeout = 20 * time.Second
	defaultAppStopTimeout  = 3 * time.Second
	// margin is the least time left between Ferry's own end and the
	// kubelet's SIGKILL.
	margin = 2 * time.Second
)

// Objects are the decoded objects of a rendered manifest.
type Objects struct {
	Deployments     []appsv1.Deployment
	Services        []corev1.Service
	PDBs            []policyv1.PodDisruptionBudget
	HPAs            []autoscalingv2.HorizontalPodAutoscaler
	ServiceMonitors []ServiceMonitor
}

// ServiceMonitor is the part of the Prometheus Operator's object checked.
type ServiceMonitor struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		Endpoints []struct {
			Port string `json:"port"`
			Path string `json:"path"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// Decode reads a multi-document YAML manifest.
func Decode(manifest []byte) (Objects, error) {
	var o Objects
	for _, doc := range bytes.Split(manifest, []byte("\n---")) {
		var meta struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return o, fmt.Errorf("decode: %w", err)
		}
		var err error
		switch meta.Kind {
		case "":
			continue
		case "Deployment":
			var d appsv1.Deployment
			err = yaml.UnmarshalStrict(doc, &d)
			o.Deployments = append(o.Deployments, d)
		case "Service":
			var s corev1.Service
			err = yaml.UnmarshalStrict(doc, &s)
			o.Services = append(o.Services, s)
		case "PodDisruptionBudget":
			var p policyv1.PodDisruptionBudget
			err = yaml.UnmarshalStrict(doc, &p)
			o.PDBs = append(o.PDBs, p)
		case "HorizontalPodAutoscaler":
			var h autoscalingv2.HorizontalPodAutoscaler
			err = yaml.UnmarshalStrict(doc, &h)
			o.HPAs = append(o.HPAs, h)
		case "ServiceMonitor":
			var s ServiceMonitor
			err = yaml.Unmarshal(doc, &s)
			o.ServiceMonitors = append(o.ServiceMonitors, s)
		default:
			return o, fmt.Errorf("unexpected kind %s", meta.Kind)
		}
		if err != nil {
			return o, fmt.Errorf("decode %s: %w", meta.Kind, err)
		}
	}
	return o, nil
}

// Check returns every way the objects fail Ferry's needs.
func Check(o Objects) error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if len(o.Deployments) != 1 {
		bad("want one Deployment, got %d", len(o.Deployments))
		return errors.Join(errs...)
	}
	d := o.Deployments[0]
	pod := d.Spec.Template.Spec
	podLabels := labels.Set(d.Spec.Template.Labels)
	if sel := labels.SelectorFromSet(d.Spec.Selector.MatchLabels); !sel.Matches(podLabels) {
		bad("the Deployment's selector does not select its pods")
	}
	if len(pod.Containers) != 1 {
		bad("want one container, got %d", len(pod.Containers))
		return errors.Join(errs...)
	}
	c := pod.Containers[0]
	flags := parseFlags(c.Args)

	// Probes on the metrics port, which is where --metrics-address listens.
	metricsPort := 0
	if addr, ok := flags["metrics-address"]; !ok {
		bad("no --metrics-address: the probes have nothing to reach")
	} else if _, p, err := net.SplitHostPort(addr); err != nil {
		bad("--metrics-address %q: %v", addr, err)
	} else {
		metricsPort, _ = strconv.Atoi(p)
	}
	portOf := func(name string) int {
		for _, p := range c.Ports {
			if p.Name == name {
				return int(p.ContainerPort)
			}
		}
		return 0
	}
	for _, pr := range []struct {
		name, path string
		probe      *corev1.Probe
	}{{"liveness", "/health", c.LivenessProbe}, {"readiness", "/ready", c.ReadinessProbe}} {
		if pr.probe == nil || pr.probe.HTTPGet == nil {
			bad("no HTTP %s probe", pr.name)
			continue
		}
		g := pr.probe.HTTPGet
		port := g.Port.IntValue()
		if g.Port.StrVal != "" {
			port = portOf(g.Port.StrVal)
		}
		if g.Path != pr.path || port == 0 || port != metricsPort {
			bad("%s probe is GET %s on port %v (%d), want %s on the metrics port %d", pr.name, g.Path, g.Port.String(), port, pr.path, metricsPort)
		}
		if pr.probe.TimeoutSeconds < 1 {
			bad("%s probe timeout %d s", pr.name, pr.probe.TimeoutSeconds)
		}
	}
	if portOf("metrics") != metricsPort {
		bad("container port \"metrics\" is %d, --metrics-address listens on %d", portOf("metrics"), metricsPort)
	}
	if p, ok := flags["port"]; !ok || strconv.Itoa(portOf("http")) != p {
		bad("container port \"http\" is %d, --port is %q", portOf("http"), p)
	}

	// The grace period covers the drain.
	need := seconds(flags, "drain-delay", defaultDrainDelay) + seconds(flags, "shutdown-timeout", defaultShutdownTimeout) +
		seconds(flags, "app-stop-timeout", defaultAppStopTimeout) + margin
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		if s := c.Lifecycle.PreStop.Sleep; s != nil {
			need += time.Duration(s.Seconds) * time.Second
		} else {
			bad("a preStop hook other than sleep: its length cannot be checked")
		}
	}
	grace := 30 * time.Second // Kubernetes' default
	if pod.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	}
	if grace < need {
		bad("terminationGracePeriodSeconds %s is less than preStop + drain delay + shutdown timeout + app stop timeout + %s = %s", grace, margin, need)
	}

	// Non-root, read-only, nothing to escalate to.
	sc, psc := c.SecurityContext, pod.SecurityContext
	nonRoot := (sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
	if !nonRoot {
		bad("runAsNonRoot is not set")
	}
	if (sc != nil && sc.RunAsUser != nil && *sc.RunAsUser == 0) || (psc != nil && psc.RunAsUser != nil && *psc.RunAsUser == 0) {
		bad("runAsUser is 0")
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		bad("readOnlyRootFilesystem is not set")
	} else {
		mounts := map[string]bool{}
		for _, m := range c.VolumeMounts {
			mounts[m.MountPath] = true
		}
		for _, dir := range []string{"/run/ferry", "/tmp"} {
			if !mounts[dir] {
				bad("read-only root filesystem without a volume on %s (Ferry writes there)", dir)
			}
		}
	}
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		bad("allowPrivilegeEscalation is not false")
	}
	if sc == nil || sc.Capabilities == nil || len(sc.Capabilities.Drop) == 0 {
		bad("capabilities are not dropped")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		bad("resources: want cpu and memory requests and a memory limit, got %v", c.Resources)
	}

	// The objects find each other.
	if len(o.Services) != 1 {
		bad("want one Service, got %d", len(o.Services))
	} else {
		svc := o.Services[0]
		if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) || len(svc.Spec.Selector) == 0 {
			bad("the Service does not select the pods")
		}
		names := map[string]bool{}
		for _, p := range svc.Spec.Ports {
			names[p.Name] = true
			if t := p.TargetPort.StrVal; t != "" && portOf(t) == 0 {
				bad("Service port %s targets %q, which the container lacks", p.Name, t)
			}
		}
		for _, sm := range o.ServiceMonitors {
			if !labels.SelectorFromSet(sm.Spec.Selector.MatchLabels).Matches(labels.Set(svc.Labels)) {
				bad("ServiceMonitor %s does not select the Service", sm.Metadata.Name)
			}
			for _, e := range sm.Spec.Endpoints {
				if !names[e.Port] || e.Path != "/metrics" {
					bad("ServiceMonitor scrapes port %q path %q; the Service has %v", e.Port, e.Path, names)
				}
			}
		}
	}
	for _, p := range o.PDBs {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil || !sel.Matches(podLabels) {
			bad("PodDisruptionBudget %s does not select the pods", p.Name)
		}
	}
	for _, h := range o.HPAs {
		if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != d.Name {
			bad("HPA %s scales %s %s, not the Deployment %s", h.Name, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name, d.Name)
		}
		queue := false
		for _, m := range h.Spec.Metrics {
			if m.Pods != nil && strings.Contains(m.Pods.Metric.Name, "queue_wait") {
				queue = true
			}
		}
		if !queue {
			bad("HPA %s does not scale on Ferry's queue wait", h.Name)
		}
	}
	return errors.Join(errs...)
}

// parseFlags reads --name=value and --name value arguments.
func parseFlags(args []string) map[string]string {
	out := map[string]string{}
	for i := 0; i < len(args); i++ {
		a, ok := strings.CutPrefix(args[i], "--")
		if !ok {
			continue
		}
		if k, v, ok := strings.Cut(a, "="); ok {
			out[k] = v
		} else if i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
			out[a] = args[i+1]
			i++
		} else {
			out[a] = "true"
		}
	}
	return out
}

func seconds(flags map[string]string, name string, def time.Duration) time.Duration {
	v, ok := flags[name]
	if !ok {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 1 << 62 // unreadable: never enough grace
	}
	return time.Duration(f * float64(time.Second))
}
