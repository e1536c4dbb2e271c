package config

import (
	"encoding/json"
	"flag"
	"maps"
	"reflect"
	"strconv"
	"strings"
)

// Effective is the configuration as its options name it and in the units
// they are written in, for `ferry config check` and `ferry status --show
// server`: the keys of Passengerfile.json and the multi-app file (the
// option's name with '_' for '-'), durations in seconds, sizes in bytes or
// with k/m/g, the log level by name. Server-wide options are at the top;
// each app's are in "app", a list, as the multi-app file's [[app]] tables.
// Flag-only options (--disable-X, which set another option) and options
// Ferry ignores are left out.
func (c *Config) Effective() map[string]any {
	out := map[string]any{}
	srv := c.Server
	seen := map[field]bool{}
	for _, o := range options {
		if o.Scope != serverScope || o.key() == "" {
			continue
		}
		if v, ok := effectiveValue(o.bindServer(&srv), seen); ok {
			out[o.key()] = v
		}
	}
	apps := make([]any, len(c.Apps))
	for i := range c.Apps {
		a := c.Apps[i]
		m := map[string]any{}
		seen := map[field]bool{}
		for _, o := range options {
			if o.Scope != appScope || o.key() == "" {
				continue
			}
			if v, ok := effectiveValue(o.bindApp(&a), seen); ok {
				m[o.key()] = v
			}
		}
		apps[i] = m
	}
	out["app"] = apps
	return out
}

// EffectiveJSON is Effective as indented JSON, keys sorted.
func (c *Config) EffectiveJSON() []byte {
	b, _ := json.MarshalIndent(c.Effective(), "", "  ")
	return append(b, '\n')
}

// field is one value's type and address: two options bound to it are one
// setting.
type field struct {
	t reflect.Type
	p uintptr
}

// unwrapper is a value that wraps another (front options' defaults).
type unwrapper interface{ unwrap() flag.Value }

func (d *defaulted) unwrap() flag.Value { return d.Value }

// effectiveValue is v's setting as JSON: a number, a boolean, a string, a
// list or a map; false for values not to show. seen holds the fields
// already shown, so that an option that is another's alias
// (app-group-name, name) appears once.
func effectiveValue(v flag.Value, seen map[field]bool) (any, bool) {
	for {
		u, ok := v.(unwrapper)
		if !ok {
			break
		}
		v = u.unwrap()
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && !rv.IsNil() {
		k := field{rv.Type(), rv.Pointer()}
		if seen[k] {
			return nil, false
		}
		seen[k] = true
	}
	switch x := v.(type) {
	case *ignoredValue, *negBoolValue, *negOptBoolValue:
		return nil, false
	case *intValue:
		return int(*x), true
	case *int64Value:
		return int64(*x), true
	case *uint64Value:
		return uint64(*x), true
	case *secondsValue:
		f, _ := strconv.ParseFloat(x.String(), 64)
		return f, true
	case *modeValue, *levelValue, *strValue:
		return v.String(), true
	case *ctlValue:
		return append([]string{}, x.p.Ctls...), true
	case *bytesValue:
		return FormatBytes(int64(*x)), true
	case *listValue:
		return append([]string{}, *x...), true
	case *envValue:
		m := map[string]string{}
		maps.Copy(m, *x)
		return m, true
	case *hookValue:
		m := map[string][]string{}
		maps.Copy(m, *x)
		return m, true
	case *optBoolValue:
		if *x.p == nil {
			return nil, true // unset: the default for the environment
		}
		return **x.p, true
	}
	s := v.String()
	if b, ok := v.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		if bv, err := strconv.ParseBool(s); err == nil {
			return bv, true
		}
	}
	if _, ok := v.(*onOffValue); ok {
		bv, _ := strconv.ParseBool(s)
		return bv, true
	}
	if _, ok := v.(multi); ok {
		if s == "" {
			return []string{}, true
		}
		return strings.Fields(s), true
	}
	return s, true
}

// FormatBytes writes n as users write sizes: with the largest of g, m, k
// that divides it, else in bytes.
func FormatBytes(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
