package config

import "reflect"

// AppChanges is what a reload does to the running apps, by name. An app
// whose settings changed in any way is replaced: it stops, and a new one
// with the new settings starts (a restart). Names are unique in a Config.
type AppChanges struct {
	// Keep are the unchanged apps: they keep their processes. In the new
	// configuration's order.
	Keep []string
	// Start are the apps added or changed. In the new configuration's order.
	Start []string
	// Stop are the apps removed or changed. In the running order.
	Stop []string
}

// DiffApps decides what a reload from the running apps to next changes.
func DiffApps(running, next []App) AppChanges {
	old := make(map[string]App, len(running))
	for _, a := range running {
		old[a.Name] = a
	}
	var c AppChanges
	kept := map[string]bool{}
	for _, a := range next {
		if o, ok := old[a.Name]; ok && reflect.DeepEqual(o, a) {
			c.Keep = append(c.Keep, a.Name)
			kept[a.Name] = true
			continue
		}
		c.Start = append(c.Start, a.Name)
	}
	for _, a := range running {
		if !kept[a.Name] {
			c.Stop = append(c.Stop, a.Name)
		}
	}
	return c
}

// ServerChanged says whether the server-wide settings differ: they take
// effect only when Ferry restarts, not on a reload.
func ServerChanged(running, next *Config) bool {
	return !reflect.DeepEqual(running.Server, next.Server)
}
