package config

import (
	"errors"
	"fmt"
	"reflect"
)

// Effective is the configuration a reload from running to next puts in
// effect: next's value for every key a reload applies, running's for every
// key that waits for a restart (Diff marks them Restart). The result is
// validated: the live part of next must fit the restart-only part of
// running (a shortcut on a node still running as a hub does not).
func Effective(running, next *Config) (*Config, error) {
	out := *next
	merge(reflect.ValueOf(&out).Elem(), reflect.ValueOf(running).Elem(), "", running, next)
	for key, d := range map[string]*string{"ipsec.auth.cert": &out.Files.Cert, "ipsec.auth.key": &out.Files.Key, "ipsec.auth.ca": &out.Files.CA} {
		if disp, _ := disposition(key, running, next); disp == Restart {
			*d = running.Files.digests()[key]
		}
	}
	if err := newErrors(out.Validate(), running); err != nil {
		return nil, fmt.Errorf("config: the changes a reload applies do not fit the settings that wait for a restart (restart dmvpnd to apply the file): %w", err)
	}
	return &out, nil
}

// newErrors drops from err the problems the running configuration has
// itself (a reload is not the place to report them), and joins the rest.
func newErrors(err error, running *Config) error {
	if err == nil {
		return nil
	}
	r := *running
	known := map[string]bool{}
	for _, e := range unjoin(r.Validate()) {
		known[e.Error()] = true
	}
	var out []error
	for _, e := range unjoin(err) {
		if !known[e.Error()] {
			out = append(out, e)
		}
	}
	return errors.Join(out...)
}

func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// merge copies into dst (a copy of next) the value of src (running) for
// every restart-only key under prefix.
func merge(dst, src reflect.Value, prefix string, running, next *Config) {
	t := dst.Type()
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("mapstructure")
		if tag == "" || tag == "-" {
			continue
		}
		key := joinPath(prefix, tag)
		ft := t.Field(i).Type
		switch {
		case ft.Kind() == reflect.Struct && !leafTypes[ft]:
			merge(dst.Field(i), src.Field(i), key, running, next)
			continue
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct && !leafTypes[ft.Elem()]:
			key += "[]"
		}
		if d, _ := disposition(key, running, next); d == Restart {
			dst.Field(i).Set(src.Field(i))
		}
	}
}
