package wire

import "strings"

// Pattern is a compiled route path: literal segments, ":name" segments that
// match one segment, and a final "*" that matches the rest (possibly empty).
type Pattern struct {
	Method string
	Path   string
	segs   []string
	rank   [4]int // specificity, computed once
}

// CompilePattern compiles a route path pattern. method "*" or "" matches any.
func CompilePattern(method, path string) Pattern {
	p := Pattern{Method: strings.ToUpper(method), Path: path, segs: strings.Split(strings.Trim(path, "/"), "/")}
	p.rank = p.specificity()
	return p
}

// Match reports whether the request matches, and the path parameters.
func (p Pattern) Match(method, path string) (map[string]string, bool) {
	var buf [maxStackSegs]string
	return p.match(method, splitPath(path, buf[:0]))
}

// maxStackSegs is how many path segments are split without allocating.
const maxStackSegs = 16

// splitPath is strings.Split(strings.Trim(path, "/"), "/"), appended to
// segs: a path is split once per request, however many patterns it is
// matched against, into the caller's (stack) array.
func splitPath(path string, segs []string) []string {
	path = strings.Trim(path, "/")
	for {
		i := strings.IndexByte(path, '/')
		if i < 0 {
			return append(segs, path)
		}
		segs = append(segs, path[:i])
		path = path[i+1:]
	}
}

func (p *Pattern) match(method string, segs []string) (map[string]string, bool) {
	if p.Method != "" && p.Method != "*" && p.Method != method && !(p.Method == "GET" && method == "HEAD") {
		return nil, false
	}
	// Literal segments first, so that a pattern that cannot match allocates
	// no parameters.
	n := len(p.segs)
	wild := p.trailingWild()
	if (wild && len(segs) < n-1) || (!wild && len(segs) != n) {
		return nil, false
	}
	for i, s := range p.segs {
		if (wild && i == n-1) || strings.HasPrefix(s, ":") {
			continue
		}
		if s != segs[i] {
			return nil, false
		}
	}
	var params map[string]string
	for i, s := range p.segs {
		switch {
		case wild && i == n-1:
			if params == nil {
				params = map[string]string{}
			}
			params["*"] = strings.Join(segs[min(i, len(segs)):], "/")
		case strings.HasPrefix(s, ":"):
			if segs[i] == "" {
				return nil, false
			}
			if params == nil {
				params = map[string]string{}
			}
			params[s[1:]] = segs[i]
		}
	}
	return params, true
}

// UnderPrefix reports whether path is prefix itself or below it.
func UnderPrefix(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// specificity ranks a pattern: literal segments first, then fewer ":param"
// segments, then no trailing "*", then an exact method over "*".
func (p Pattern) specificity() [4]int {
	var lit, params, wild, method int
	for i, s := range p.segs {
		switch {
		case s == "*" && i == len(p.segs)-1:
			wild = 1
		case strings.HasPrefix(s, ":"):
			params++
		default:
			lit++
		}
	}
	if p.Method != "" && p.Method != "*" {
		method = 1
	}
	return [4]int{lit, -params, -wild, method}
}

// trailingWild tells whether the pattern ends in "*" (specificity's third
// rank, computed once by CompilePattern).
func (p *Pattern) trailingWild() bool { return p.rank[2] != 0 }

// BestMatch returns the index of the most specific pattern matching the
// request (see specificity), and its parameters; -1 when none matches. The
// most specific wins, as in Echo's router, so that a route's requirements are
// those of the handler that will actually serve it: "/x/items/admin" is never
// guarded as "/x/items/:id".
func BestMatch(ps []Pattern, method, path string) (int, map[string]string) {
	var buf [maxStackSegs]string
	segs := splitPath(path, buf[:0])
	best, bestParams := -1, map[string]string(nil)
	for i := range ps {
		p := &ps[i]
		if best >= 0 && !greater(p.rank, ps[best].rank) {
			continue // cannot win: no need to match it
		}
		if params, ok := p.match(method, segs); ok {
			best, bestParams = i, params
		}
	}
	return best, bestParams
}

func greater(a, b [4]int) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] > b[i]
		}
	}
	return false
}

// isTemplateParam tells whether seg of an OpenAPI path template is a
// parameter ("{id}").
func isTemplateParam(seg string) bool {
	return len(seg) >= 2 && seg[0] == '{' && seg[len(seg)-1] == '}'
}

// TemplateParams returns the parameter names of an OpenAPI path template,
// in order: "/items/{id}/tags/{tag}" gives id and tag.
func TemplateParams(tmpl string) []string {
	var params []string
	for _, s := range strings.Split(tmpl, "/") {
		if isTemplateParam(s) {
			params = append(params, s[1:len(s)-1])
		}
	}
	return params
}

// TemplateWith is an OpenAPI path template with every parameter segment
// replaced by seg. With "{}" it is the template's shape, which templates
// that differ only in parameter names share.
func TemplateWith(tmpl, seg string) string {
	segs := strings.Split(tmpl, "/")
	for i, s := range segs {
		if isTemplateParam(s) {
			segs[i] = seg
		}
	}
	return strings.Join(segs, "/")
}
