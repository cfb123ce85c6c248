package profile

import (
	"fmt"
	"reflect"
	"strings"
)

// Keys lists every expectation key ("section.field") a profile can declare.
func Keys() []string {
	var keys []string
	pt := reflect.TypeOf(Profile{})
	for i := 0; i < pt.NumField(); i++ {
		f := pt.Field(i)
		sec := yamlName(f)
		if f.Type.Kind() != reflect.Struct || sec == "match" || sec == "" {
			continue
		}
		for j := 0; j < f.Type.NumField(); j++ {
			keys = append(keys, sec+"."+yamlName(f.Type.Field(j)))
		}
	}
	return keys
}

// IsKey reports whether k is a key a profile can declare.
func IsKey(k string) bool {
	for _, x := range Keys() {
		if x == k {
			return true
		}
	}
	return false
}

func yamlName(f reflect.StructField) string {
	tag := f.Tag.Get("yaml")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" {
		return ""
	}
	return name
}

// NotPromisedError says the profile lists a key under not_promised, with its reason.
type NotPromisedError struct{ Profile, Key, Reason string }

func (e *NotPromisedError) Error() string {
	return fmt.Sprintf("profile %s does not promise %s: %s", e.Profile, e.Key, e.Reason)
}

// Get returns the value of key ("section.field") as T: the one path from a key to the value a
// check compares with. A yes/no key (*bool in the struct) reads as bool, and so on for every
// pointer. It fails with *NotPromisedError when the profile lists the key under not_promised,
// and with a plain error when the key is unknown, not declared, empty where a value is needed,
// or not a T.
func Get[T any](p *Profile, key string) (T, error) {
	var zero T
	if reason, ok := p.Unpromised(key); ok {
		return zero, &NotPromisedError{Profile: p.Name, Key: key, Reason: reason}
	}
	f, ok := p.field(key)
	if !ok {
		return zero, fmt.Errorf("profile: no key %q (known keys: %s)", key, strings.Join(Keys(), ", "))
	}
	if !p.Declares(key) {
		return zero, fmt.Errorf("profile %s declares nothing for %s: give it a value, or list it under not_promised with the reason", p.Name, key)
	}
	if f.Kind() == reflect.Pointer && f.Type().Elem() == reflect.TypeFor[T]() {
		if f.IsNil() {
			return zero, fmt.Errorf("profile %s: %s has no value", p.Name, key)
		}
		f = f.Elem()
	}
	v, ok := f.Interface().(T)
	if !ok {
		return zero, fmt.Errorf("profile: %s is a %s, not a %T", key, f.Type(), zero)
	}
	return v, nil
}

// field is the struct field that holds key.
func (p *Profile) field(key string) (reflect.Value, bool) {
	sec, name, ok := strings.Cut(key, ".")
	if !ok {
		return reflect.Value{}, false
	}
	pv := reflect.ValueOf(p).Elem()
	for i := 0; i < pv.NumField(); i++ {
		sf := pv.Type().Field(i)
		if yamlName(sf) != sec || sf.Type.Kind() != reflect.Struct || sec == "match" {
			continue
		}
		s := pv.Field(i)
		for j := 0; j < s.NumField(); j++ {
			if yamlName(s.Type().Field(j)) == name {
				return s.Field(j), true
			}
		}
	}
	return reflect.Value{}, false
}
