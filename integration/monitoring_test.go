package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The files of deploy/monitoring, as operators load them.
var (
	alertRulesFile = filepath.Join("..", "deploy", "monitoring", "ferry-alerts.yml")
	dashboardFile  = filepath.Join("..", "deploy", "monitoring", "ferry-dashboard.json")
)

// holdApp is a WSGI app whose /hold requests wait until the file "release"
// exists in its directory, so a test can keep processes busy as long as it
// needs and then let them all go at once.
const holdApp = `import os, time

RELEASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "release")

def application(environ, start_response):
    if environ.get("PATH_INFO") == "/hold":
        deadline = time.time() + 300
        while not os.path.exists(RELEASE) and time.time() < deadline:
            time.sleep(0.02)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
`

// TestPrometheusScrapesFerry runs a real Prometheus, loaded with
// deploy/monitoring's alert rules, scraping a real Ferry, and evaluates an
// alert expression (as Prometheus loaded it) and a dashboard query (as
// Grafana would send it) against what the traffic did: idle, then every
// process busy and a request queued.
func TestPrometheusScrapesFerry(t *testing.T) {
	promBin := needPrometheus(t)
	dir := filepath.Join(shortTempDir(t), "hold")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "passenger_wsgi.py"), []byte(holdApp), 0o644); err != nil {
		t.Fatal(err)
	}
	metricsAddr := "127.0.0.1:" + freePort(t)
	f := startFerry(t, dir, "--metrics-address", metricsAddr, "--app-type", "wsgi",
		"--min-instances", "2", "--max-pool-size", "2", "--max-request-queue-size", "1")
	prom := startPrometheus(t, promBin, metricsAddr)

	// Scraped once before the traffic, so that rate() sees it happen.
	prom.waitFor(t, `sum(ferry_http_requests_total{app="hold",class="2xx"})`, func(r []promSample) bool {
		return len(r) == 1 && r[0].Value == 0
	})
	const requests = 5
	for range requests {
		if code, body := f.get("/"); code != 200 {
			t.Fatalf("GET / = %d %q", code, body)
		}
	}
	// Scraped: the requests are in Prometheus, and both processes are up.
	prom.waitFor(t, `sum(ferry_http_requests_total{app="hold",class="2xx"})`, func(r []promSample) bool {
		return len(r) == 1 && r[0].Value == requests
	})
	prom.waitFor(t, `sum(ferry_pool_processes{app="hold",state="serving"})`, func(r []promSample) bool {
		return len(r) == 1 && r[0].Value == 2
	})

	// Every query of the dashboard is valid PromQL to this Prometheus.
	for _, p := range dashboardPanels(t) {
		for _, tg := range p.Targets {
			prom.query(t, grafanaVars.Replace(tg.Expr)) // fails the test on an error
		}
	}
	// The request rate panel shows the app's 2xx (once two scrapes are in
	// its window).
	prom.waitFor(t, dashboardQuery(t, "Requests by status class"), func(r []promSample) bool {
		for _, s := range r {
			if s.Metric["app"] == "hold" && s.Metric["class"] == "2xx" && s.Value > 0 {
				return true
			}
		}
		return false
	})

	// The dashboard's saturation panel, as Grafana sends it.
	saturation := dashboardQuery(t, "Saturation: busy / max processes")
	busyRule := prom.rule(t, "FerryAllProcessesBusy")
	queueRule := prom.rule(t, "FerryRequestQueueNearlyFull")
	if r := prom.query(t, saturation); len(r) != 1 || r[0].Metric["app"] != "hold" || r[0].Value != 0 {
		t.Fatalf("saturation while idle = %+v, want hold at 0", r)
	}
	if r := prom.query(t, busyRule.Query); len(r) != 0 {
		t.Fatalf("%s while idle = %+v, want nothing", busyRule.Query, r)
	}

	// Both processes take a request that holds them; a third waits in
	// the queue (of size 1).
	var wg sync.WaitGroup
	released := false
	release := func() {
		if !released {
			released = true
			os.WriteFile(filepath.Join(dir, "release"), nil, 0o644)
			wg.Wait()
		}
	}
	defer release()
	for range 3 {
		wg.Go(func() {
			resp, err := client.Get(f.URL + "/hold")
			if err != nil {
				t.Errorf("GET /hold: %v", err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("GET /hold = %d", resp.StatusCode)
			}
		})
	}
	prom.waitFor(t, saturation, func(r []promSample) bool {
		return len(r) == 1 && r[0].Metric["app"] == "hold" && r[0].Value == 1
	})
	// The alert's expression holds for the app, with its labels: all 2
	// processes busy. Its rule, evaluated by Prometheus, is pending (it
	// fires after 5 minutes of this).
	prom.waitFor(t, busyRule.Query, func(r []promSample) bool {
		return len(r) == 1 && r[0].Metric["app"] == "hold" && r[0].Metric["job"] == "ferry" && r[0].Value == 2
	})
	eventuallyFor(t, 120*time.Second, "FerryAllProcessesBusy pending", func() bool {
		r := prom.rule(t, "FerryAllProcessesBusy")
		return r.State == "pending" && len(r.Alerts) == 1 && r.Alerts[0].Labels["app"] == "hold"
	})
	// The queue holds one request of one allowed.
	prom.waitFor(t, queueRule.Query, func(r []promSample) bool {
		return len(r) == 1 && r[0].Metric["app"] == "hold" && r[0].Value == 1
	})

	// Released, the processes are free again and the alert resolves.
	release()
	prom.waitFor(t, saturation, func(r []promSample) bool { return len(r) == 1 && r[0].Value == 0 })
	prom.waitFor(t, busyRule.Query, func(r []promSample) bool { return len(r) == 0 })
	prom.waitFor(t, `sum(ferry_http_requests_total{app="hold",class="2xx"})`, func(r []promSample) bool {
		return len(r) == 1 && r[0].Value == requests+3
	})
}

// TestMonitoringMetricNames checks that every metric deploy/monitoring's
// dashboard and alert rules use is one a real Ferry exports (histograms
// by their _bucket series), so a renamed metric cannot leave a panel or an
// alert silently empty.
func TestMonitoringMetricNames(t *testing.T) {
	metricsAddr := "127.0.0.1:" + freePort(t)
	f := startFerry(t, fixture(t, "wsgi/echo"), "--metrics-address", metricsAddr)
	f.get("/")
	resp, err := client.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	exported := map[string]bool{}
	for line := range strings.Lines(string(body)) {
		if name, _, ok := strings.Cut(line, "{"); ok && !strings.HasPrefix(line, "#") {
			exported[name] = true
		} else if name, _, ok := strings.Cut(line, " "); ok && !strings.HasPrefix(line, "#") {
			exported[name] = true
		}
	}
	// Exported only while Ferry manages certificates (automatic HTTPS),
	// which this Ferry does not: its name must still be the one
	// internal/metrics declares.
	pending := map[string]bool{"ferry_certificate_not_after_timestamp_seconds": true}
	certsSrc, err := os.ReadFile("../internal/metrics/certs.go")
	if err != nil {
		t.Fatal(err)
	}
	for n := range pending {
		if !strings.Contains(string(certsSrc), `"`+n+`"`) {
			t.Errorf("%s is not declared in internal/metrics/certs.go", n)
		}
	}

	var exprs []string
	rules, err := os.ReadFile(alertRulesFile)
	if err != nil {
		t.Fatal(err)
	}
	exprs = append(exprs, string(rules))
	for _, p := range dashboardPanels(t) {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	nameRe := regexp.MustCompile(`\b(?:ferry|go|process)_[a-z_]+\b`)
	used := map[string]bool{}
	for _, e := range exprs {
		for _, n := range nameRe.FindAllString(e, -1) {
			used[n] = true
		}
	}
	if len(used) < 20 {
		t.Fatalf("found only %d metric names in deploy/monitoring: %v", len(used), used)
	}
	for _, n := range slices.Sorted(maps.Keys(used)) {
		if !exported[n] && !pending[n] {
			t.Errorf("deploy/monitoring uses %s, which Ferry does not export", n)
		}
	}
}

// TestDashboardWellFormed checks what Grafana needs to import the
// dashboard on any Prometheus data source: every panel and query on the
// ${datasource} variable, unique panel ids, variables for job, instance and
// app used by every app-level query.
func TestDashboardWellFormed(t *testing.T) {
	var d struct {
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Name string `json:"name"`
			} `json:"list"`
		} `json:"templating"`
	}
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if d.UID == "" {
		t.Error("dashboard has no uid")
	}
	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name)
	}
	if !slices.Equal(vars, []string{"datasource", "job", "instance", "app"}) {
		t.Errorf("variables %v", vars)
	}
	ids := map[int]bool{}
	for _, p := range dashboardPanels(t) {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if p.Datasource.UID != "${datasource}" || p.Description == "" || len(p.Targets) == 0 {
			t.Errorf("panel %q: datasource %q, description %q, %d queries", p.Title, p.Datasource.UID, p.Description, len(p.Targets))
		}
		for _, tg := range p.Targets {
			if tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q query %s: datasource %q", p.Title, tg.RefID, tg.Datasource.UID)
			}
			if !strings.Contains(tg.Expr, `instance=~"$instance"`) || !strings.Contains(tg.Expr, `job=~"$job"`) {
				t.Errorf("panel %q query %s does not filter by job and instance: %s", p.Title, tg.RefID, tg.Expr)
			}
			if strings.Contains(tg.Expr, "ferry_") && !strings.Contains(tg.Expr, "certificate") &&
				!strings.Contains(tg.Expr, `app=~"$app"`) {
				t.Errorf("panel %q query %s does not filter by app: %s", p.Title, tg.RefID, tg.Expr)
			}
		}
	}
}

type dashPanel struct {
	ID          int    `json:"id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Datasource  struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		RefID      string `json:"refId"`
		Expr       string `json:"expr"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
}

func dashboardPanels(t *testing.T) []dashPanel {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []dashPanel `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d.Panels
}

// grafanaVars replaces the dashboard's variables as Grafana does with
// "All" selected.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$job", ".*", "$instance", ".*", "$app", ".*")

// dashboardQuery is the first query of the panel titled title, with the
// dashboard's variables replaced.
func dashboardQuery(t *testing.T, title string) string {
	t.Helper()
	for _, p := range dashboardPanels(t) {
		if p.Title == title && len(p.Targets) > 0 {
			return grafanaVars.Replace(p.Targets[0].Expr)
		}
	}
	t.Fatalf("no panel %q in %s", title, dashboardFile)
	return ""
}

// needPrometheus finds Debian's prometheus binary; CI must have it
// (scripts/monitoring.sh installs it), elsewhere the test is skipped.
func needPrometheus(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("prometheus not installed; scripts/monitoring.sh installs it")
		}
		t.Skip("prometheus not installed (apt-get install prometheus)")
	}
	return p
}

// prometheus is one running Prometheus server of a test.
type prometheus struct {
	url string
}

// startPrometheus runs Prometheus on a free port with its own config and
// storage, scraping target every second and evaluating deploy/monitoring's
// rules every second, with flags added to its command line. It is stopped
// at test cleanup.
func startPrometheus(t *testing.T, bin, target string, flags ...string) *prometheus {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Abs(alertRulesFile)
	if err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: ferry
    static_configs:
      - targets: [%q]
`, rules, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + freePort(t)
	cmd := exec.Command(bin, append([]string{"--config.file=" + filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path=" + filepath.Join(dir, "data"), "--web.listen-address=" + addr}, flags...)...)
	logs := newLogBuffer()
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("prometheus log:\n%s", logs.String())
		}
	})
	p := &prometheus{url: "http://" + addr}
	eventuallyFor(t, 120*time.Second, "prometheus ready", func() bool {
		select {
		case <-done:
			t.Fatalf("prometheus exited:\n%s", logs.String())
		default:
		}
		resp, err := client.Get(p.url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return p
}

// promSample is one series of an instant query's result.
type promSample struct {
	Metric map[string]string
	Value  float64
}

// query evaluates expr now through Prometheus's HTTP API.
func (p *prometheus) query(t *testing.T, expr string) []promSample {
	t.Helper()
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	p.get(t, "/api/v1/query?query="+url.QueryEscape(expr), &out)
	if out.Status != "success" || out.Data.ResultType != "vector" {
		t.Fatalf("query %s: %s %s (%s)", expr, out.Status, out.Error, out.Data.ResultType)
	}
	var res []promSample
	for _, r := range out.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("query %s: value %v: %v", expr, r.Value, err)
		}
		res = append(res, promSample{Metric: r.Metric, Value: v})
	}
	return res
}

// waitFor polls expr until ok accepts its result, failing after a
// generous bound (scrapes and evaluations are every second).
func (p *prometheus) waitFor(t *testing.T, expr string, ok func([]promSample) bool) {
	t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for {
		r := p.query(t, expr)
		if ok(r) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 120s waiting on %s; last result %+v", expr, r)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// promRule is an alerting rule as Prometheus loaded and evaluates it.
type promRule struct {
	Name   string `json:"name"`
	Query  string `json:"query"`
	State  string `json:"state"`
	Alerts []struct {
		Labels map[string]string `json:"labels"`
		State  string            `json:"state"`
	} `json:"alerts"`
}

func (p *prometheus) rule(t *testing.T, name string) promRule {
	t.Helper()
	var out struct {
		Data struct {
			Groups []struct {
				Rules []promRule `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	p.get(t, "/api/v1/rules?type=alert", &out)
	for _, g := range out.Data.Groups {
		for _, r := range g.Rules {
			if r.Name == name {
				return r
			}
		}
	}
	t.Fatalf("prometheus has no alerting rule %s loaded", name)
	return promRule{}
}

func (p *prometheus) get(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := client.Get(p.url + path)
	if err != nil {
		t.Fatalf("prometheus GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("prometheus GET %s: %v: %.500s", path, err, b)
	}
}

// eventuallyFor is eventually with its own bound.
func eventuallyFor(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", bound, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
