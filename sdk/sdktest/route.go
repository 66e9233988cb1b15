package sdktest

import "strings"

// route is a declared route, split for matching.
type route struct {
	method   string
	pattern  string
	segments []string
}

func newRoute(method, pattern string) route {
	return route{method: method, pattern: pattern, segments: strings.Split(pattern, "/")}
}

// match reports whether path matches the pattern and returns its path
// parameters: ":name" matches one non-empty segment, a final "*" the rest of
// the path (as parameter "*"). literals counts the segments matched exactly.
func (rt route) match(path string) (params map[string]string, literals int, ok bool) {
	parts := strings.Split(path, "/")
	params = map[string]string{}
	for i, seg := range rt.segments {
		switch {
		case i == len(rt.segments)-1 && seg == "*":
			// The earlier segments matched, so parts has at least i elements.
			params["*"] = strings.Join(parts[i:], "/")
			return params, literals, true
		case i >= len(parts):
			return nil, 0, false
		case strings.HasPrefix(seg, ":"):
			if parts[i] == "" {
				return nil, 0, false
			}
			params[seg[1:]] = parts[i]
		case seg == parts[i]:
			literals++
		default:
			return nil, 0, false
		}
	}
	return params, literals, len(parts) == len(rt.segments)
}

// matchRoute returns the route a request would be matched to: among the
// routes of its method (or "*") whose pattern matches, the one with the most
// literal segments, the first declared on a tie.
func matchRoute(routes []route, method, path string) (best route, params map[string]string, ok bool) {
	bestLiterals := -1
	for _, rt := range routes {
		if rt.method != method && rt.method != "*" {
			continue
		}
		p, literals, matched := rt.match(path)
		if matched && literals > bestLiterals {
			best, params, bestLiterals, ok = rt, p, literals, true
		}
	}
	return best, params, ok
}
