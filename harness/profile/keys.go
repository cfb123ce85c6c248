package profile

import (
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

func knownKey(k string) bool {
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
