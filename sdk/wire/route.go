package wire

import "strings"

// Pattern is a compiled route path: literal segments, ":name" segments that
// match one segment, and a final "*" that matches the rest (possibly empty).
type Pattern struct {
	Method string
	Path   string
	segs   []string
}

// CompilePattern compiles a route path pattern. method "*" or "" matches any.
func CompilePattern(method, path string) Pattern {
	return Pattern{Method: strings.ToUpper(method), Path: path, segs: strings.Split(strings.Trim(path, "/"), "/")}
}

// Match reports whether the request matches, and the path parameters.
func (p Pattern) Match(method, path string) (map[string]string, bool) {
	if p.Method != "" && p.Method != "*" && p.Method != method && !(p.Method == "GET" && method == "HEAD") {
		return nil, false
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	var params map[string]string
	for i, s := range p.segs {
		if s == "*" && i == len(p.segs)-1 {
			if params == nil {
				params = map[string]string{}
			}
			params["*"] = strings.Join(segs[min(i, len(segs)):], "/")
			return params, true
		}
		if i >= len(segs) {
			return nil, false
		}
		if strings.HasPrefix(s, ":") {
			if segs[i] == "" {
				return nil, false
			}
			if params == nil {
				params = map[string]string{}
			}
			params[s[1:]] = segs[i]
			continue
		}
		if s != segs[i] {
			return nil, false
		}
	}
	if len(segs) != len(p.segs) {
		return nil, false
	}
	return params, true
}

// UnderPrefix reports whether path is prefix itself or below it.
func UnderPrefix(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}
