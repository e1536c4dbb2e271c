package config

import "flag"

// OptionInfo describes one command-line option of `ferry start`, for
// tests that generate command lines from the option table.
type OptionInfo struct {
	Flag  string // without dashes
	Short string // one-letter alias, or ""
	// Kind is the type of value it takes: int, seconds, bytes, bool,
	// string, list, env, level, mode, onoff, hook, ctl, or other.
	Kind string
}

// Options lists every option of `ferry start` that has a flag.
func Options() []OptionInfo {
	var out []OptionInfo
	for _, o := range options {
		if o.Name == "" {
			continue
		}
		out = append(out, OptionInfo{Flag: o.Name, Short: o.Short, Kind: kindOf(o.bindApp0())})
	}
	return out
}

func kindOf(v flag.Value) string {
	for {
		u, ok := v.(unwrapper)
		if !ok {
			break
		}
		v = u.unwrap()
	}
	switch v.(type) {
	case *intValue, *int64Value, *uint64Value:
		return "int"
	case *secondsValue:
		return "seconds"
	case *bytesValue:
		return "bytes"
	case *boolValue, *negBoolValue, *optBoolValue, *negOptBoolValue:
		return "bool"
	case *strValue:
		return "string"
	case *listValue:
		return "list"
	case *envValue:
		return "env"
	case *levelValue:
		return "level"
	case *modeValue:
		return "mode"
	case *onOffValue:
		return "onoff"
	case *hookValue:
		return "hook"
	case *ctlValue:
		return "ctl"
	}
	if b, ok := v.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return "bool"
	}
	return "other"
}
