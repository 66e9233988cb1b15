package wire

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestPatternMatch(t *testing.T) {
	tests := []struct {
		name, method, pattern, reqMethod, path string
		ok                                     bool
		params                                 map[string]string
	}{
		{"literal", "GET", "/hello/ping", "GET", "/hello/ping", true, nil},
		{"head matches get", "GET", "/hello/ping", "HEAD", "/hello/ping", true, nil},
		{"method mismatch", "GET", "/hello/ping", "POST", "/hello/ping", false, nil},
		{"any method", "*", "/hello/ping", "DELETE", "/hello/ping", true, nil},
		{"trailing slash same", "GET", "/hello/ping", "GET", "/hello/ping/", true, nil},
		{"longer path", "GET", "/hello/ping", "GET", "/hello/ping/x", false, nil},
		{"shorter path", "GET", "/hello/ping", "GET", "/hello", false, nil},
		{"param", "GET", "/hello/items/:id", "GET", "/hello/items/42", true, map[string]string{"id": "42"}},
		{"param empty", "GET", "/hello/items/:id/x", "GET", "/hello/items//x", false, nil},
		{"wildcard", "GET", "/hello/files/*", "GET", "/hello/files/a/b", true, map[string]string{"*": "a/b"}},
		{"wildcard empty", "GET", "/hello/files/*", "GET", "/hello/files", true, map[string]string{"*": ""}},
		{"wildcard deep", "GET", "/hello/files/*", "GET", "/hello/files/" + strings.Repeat("d/", 20) + "f", true, map[string]string{"*": strings.Repeat("d/", 20) + "f"}},
		{"wildcard short", "GET", "/hello/files/x/*", "GET", "/hello/files", false, nil},
		{"more segments than the stack holds", "GET", "/" + strings.Repeat("s/", 20) + ":id", "GET", "/" + strings.Repeat("s/", 20) + "7", true, map[string]string{"id": "7"}},
		{"one segment differs among many", "GET", "/" + strings.Repeat("s/", 20) + "x", "GET", "/" + strings.Repeat("s/", 20) + "y", false, nil},
		{"star not last is literal", "GET", "/hello/*/x", "GET", "/hello/a/x", false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			params, ok := CompilePattern(tc.method, tc.pattern).Match(tc.reqMethod, tc.path)
			assert.Equal(t, tc.ok, ok)
			assert.Equal(t, tc.params, params)
		})
	}
}

func TestUnderPrefix(t *testing.T) {
	assert.True(t, UnderPrefix("/hello", "/hello"))
	assert.True(t, UnderPrefix("/hello/x", "/hello"))
	assert.False(t, UnderPrefix("/helloworld", "/hello"))
	assert.False(t, UnderPrefix("/", "/hello"))
}

func TestBestMatchPrefersTheMostSpecific(t *testing.T) {
	ps := []Pattern{
		CompilePattern("GET", "/x/items/:id"),
		CompilePattern("GET", "/x/*"),
		CompilePattern("GET", "/x/items/admin"),
		CompilePattern("*", "/x/items/:id/:sub"),
		CompilePattern("GET", "/x/items/:id/:sub"),
	}
	tests := []struct {
		path string
		want int
	}{
		{"/x/items/admin", 2},
		{"/x/items/42", 0},
		{"/x/other/thing", 1},
		{"/x/items/1/2", 4},
		{"/y", -1},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			got, _ := BestMatch(ps, "GET", tc.path)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestTemplateHelpers(t *testing.T) {
	tmpl := "/items/{id}/tags/{tag}/{}/x{y}"
	assert.Equal(t, []string{"id", "tag", ""}, TemplateParams(tmpl))
	assert.Equal(t, "/items/{}/tags/{}/{}/x{y}", TemplateWith(tmpl, "{}"))
	assert.Equal(t, "/plain", TemplateWith("/plain", "{}"))
	assert.Empty(t, TemplateParams("/plain"))
}
