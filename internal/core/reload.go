package core

import (
	"context"
	"errors"
	"fmt"

	"github.com/ferry-server/ferry/internal/config"
)

// reload loads the configuration again and applies what changed
// (config.DiffApps decides): new apps start, removed apps drain and stop,
// changed apps are replaced by new ones (a restart), unchanged apps keep
// their processes. Listeners and other server-wide settings need a restart
// of Ferry; a change there is logged.
func (st *state) reload() error {
	if st.reloadFn == nil {
		return errors.New("this instance cannot reload its configuration")
	}
	log := st.out.Core
	cfg, err := st.reloadFn()
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	if config.ServerChanged(st.cfg, cfg) {
		log.Warn("server-wide settings changed; they take effect when Ferry restarts")
	}
	next, started, stopped, err := st.swapApps(cfg.Apps)
	if err != nil {
		return err
	}
	for _, a := range started {
		a.group.Start()
		logApp(log, a.cfg)
	}
	st.handler.SetApps(frontApps(next))
	for _, a := range stopped {
		log.Info("app removed or changed by the reload; stopping its processes", "app", a.cfg.Name)
		go st.retire(a)
	}
	log.Info("configuration reloaded", "apps", len(next), "started", len(started), "stopped", len(stopped),
		"unchanged", len(next)-len(started))
	return nil
}

// swapApps builds the apps that start and makes next the current set. If
// one cannot be built, those built are closed and nothing changes.
func (st *state) swapApps(apps []config.App) (next, started, stopped []*app, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	running := map[string]*app{}
	cfgs := make([]config.App, len(st.apps))
	for i, a := range st.apps {
		running[a.cfg.Name], cfgs[i] = a, a.cfg
	}
	changes := config.DiffApps(cfgs, apps)
	keep := map[string]bool{}
	for _, name := range changes.Keep {
		keep[name] = true
	}
	for _, ac := range apps {
		if keep[ac.Name] {
			next = append(next, running[ac.Name])
			continue
		}
		a, err := buildApp(st.cfg, ac, st.inst, st.out, st.reg, st.hooks)
		if err != nil {
			for _, s := range started {
				s.close()
			}
			return nil, nil, nil, fmt.Errorf("app %s: %w", ac.Name, err)
		}
		next = append(next, a)
		started = append(started, a)
	}
	for _, name := range changes.Stop {
		stopped = append(stopped, running[name])
	}
	st.apps = next
	return next, started, stopped, nil
}

// retire stops the processes of an app a reload removed or replaced.
func (st *state) retire(a *app) {
	ctx, cancel := context.WithTimeout(context.Background(), st.cfg.ShutdownTimeout)
	defer cancel()
	a.group.Close(ctx)
	a.close()
}
