package natsbus

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// validStreamName reports whether s can name a stream and prefix its
// subjects: NATS tokens characters only, no dots.
func validStreamName(s string) error {
	if s == "" {
		return fmt.Errorf("natsbus: empty stream name")
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return fmt.Errorf("natsbus: stream name %q: only A-Z, a-z, 0-9, '_' and '-' are allowed", s)
		}
	}
	return nil
}

// covers reports whether the subject filter pattern matches every subject
// that filter matches (both may hold the wildcards "*" and ">").
func covers(pattern, filter string) bool {
	p, f := strings.Split(pattern, "."), strings.Split(filter, ".")
	for i, pt := range p {
		if pt == ">" {
			return i < len(f)
		}
		if i >= len(f) || f[i] == ">" {
			return false
		}
		if pt != "*" && (pt != f[i] || f[i] == "*") {
			return false
		}
	}
	return len(p) == len(f)
}

// consumerName turns a durable group (name, event type) into a JetStream
// consumer name: the group is the pair, so the type is part of the name.
// Characters a consumer name cannot hold become '_'; when anything was
// replaced (or the name is long) a hash of the original pair keeps distinct
// groups apart.
func consumerName(name, typ string) string {
	changed := false
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
				return r
			}
			changed = true
			return '_'
		}, s)
	}
	t := "all"
	if typ != "*" {
		t = clean(typ)
	} else {
		changed = true
	}
	n := clean(name) + "_" + t
	if changed || len(n) > 64 {
		h := fnv.New32a()
		h.Write([]byte(name + "\x00" + typ))
		n = n[:min(len(n), 64)] + "_" + strconv.FormatUint(uint64(h.Sum32()), 36)
	}
	return n
}
