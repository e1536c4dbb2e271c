package deploycheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
)

const chartDir = "../../deploy/helm/ferry"

// render is `helm template` of the chart with these values.
func render(t *testing.T, vals map[string]any) (string, error) {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	inst := action.NewInstall(&action.Configuration{})
	inst.DryRun, inst.ClientOnly, inst.Replace = true, true, true
	inst.ReleaseName, inst.Namespace = "web", "default"
	inst.KubeVersion = &chartutil.KubeVersion{Version: "v1.33.0", Major: "1", Minor: "33"}
	rel, err := inst.Run(ch, vals)
	if err != nil {
		return "", err
	}
	return rel.Manifest, nil
}

// helm lint, as strict as the CLI's --strict.
func TestLint(t *testing.T) {
	l := lint.All(chartDir, map[string]any{}, "default", true)
	for _, m := range l.Messages {
		if m.Severity >= support.WarningSev {
			t.Errorf("helm lint: %s", m)
		}
	}
}

func TestChart(t *testing.T) {
	tests := []struct {
		name  string
		vals  map[string]any
		grace string // in the rendered Deployment
	}{
		{"defaults", nil, "terminationGracePeriodSeconds: 30"},
		{"everything on", map[string]any{
			"serviceMonitor": map[string]any{"enabled": true},
			"autoscaling":    map[string]any{"enabled": true},
		}, "terminationGracePeriodSeconds: 30"},
		{"a preStop sleep lengthens the grace", map[string]any{
			"drain": map[string]any{"preStopSleepSeconds": 5},
		}, "terminationGracePeriodSeconds: 35"},
		{"longer requests", map[string]any{
			"drain": map[string]any{"shutdownTimeoutSeconds": 120, "terminationGracePeriodSeconds": 200},
		}, "terminationGracePeriodSeconds: 200"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := render(t, tc.vals)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(m, tc.grace) {
				t.Errorf("want %q in\n%s", tc.grace, m)
			}
			o, err := Decode([]byte(m))
			if err != nil {
				t.Fatal(err)
			}
			if err := Check(o); err != nil {
				t.Errorf("%v\n%s", err, m)
			}
			if tc.name == "everything on" && (len(o.ServiceMonitors) != 1 || len(o.HPAs) != 1 || o.Deployments[0].Spec.Replicas != nil) {
				t.Errorf("ServiceMonitor, HPA (and no fixed replicas) wanted:\n%s", m)
			}
		})
	}
}

// A grace period shorter than the drain arithmetic is refused at render.
func TestChartRefusesShortGrace(t *testing.T) {
	_, err := render(t, map[string]any{"drain": map[string]any{"terminationGracePeriodSeconds": 20}})
	if err == nil || !strings.Contains(err.Error(), "is less than") {
		t.Fatalf("render with a 20 s grace: %v", err)
	}
}

func TestManifests(t *testing.T) {
	var all []byte
	files, _ := filepath.Glob("../../deploy/kubernetes/*.yaml")
	if len(files) == 0 {
		t.Fatal("no manifests")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(append(all, "\n---\n"...), b...)
	}
	o, err := Decode(all)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.ServiceMonitors) != 1 || len(o.HPAs) != 1 || len(o.PDBs) != 1 {
		t.Errorf("want a ServiceMonitor, an HPA and a PDB: %+v", o)
	}
	if err := Check(o); err != nil {
		t.Error(err)
	}
}

// The checks can fail: each breakage of the defaults is caught.
func TestCheckCatches(t *testing.T) {
	m, err := render(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"probe on the app port", "port: metrics", "port: http", "probe is GET"},
		{"grace too short", "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds: 25", "terminationGracePeriodSeconds"},
		{"root", "runAsNonRoot: true", "runAsNonRoot: false", "runAsNonRoot"},
		{"writable root", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "readOnlyRootFilesystem"},
		{"longer shutdown, same grace", "--shutdown-timeout=20", "--shutdown-timeout=60", "terminationGracePeriodSeconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(m, tc.from) {
				t.Fatalf("%q not in the rendered chart", tc.from)
			}
			o, err := Decode([]byte(strings.Replace(m, tc.from, tc.to, 1)))
			if err != nil {
				t.Fatal(err)
			}
			if err := Check(o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Check = %v, want an error about %s", err, tc.want)
			}
		})
	}
}
