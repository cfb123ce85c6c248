package profile

import (
	"reflect"
	"strings"
)

// declared reports whether the profile sets key ("section.field") to a non-zero value.
func declared(p *Profile, key string) bool {
	sec, field, _ := strings.Cut(key, ".")
	pv := reflect.ValueOf(*p)
	for i := 0; i < pv.NumField(); i++ {
		if yamlName(pv.Type().Field(i)) != sec {
			continue
		}
		sv := pv.Field(i)
		for j := 0; j < sv.NumField(); j++ {
			if yamlName(sv.Type().Field(j)) == field {
				return !sv.Field(j).IsZero()
			}
		}
	}
	return false
}
