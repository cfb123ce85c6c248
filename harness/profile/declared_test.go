package profile

// declared reports whether the profile sets key in its YAML (an empty list counts).
func declared(p *Profile, key string) bool { return p.Declares(key) }
