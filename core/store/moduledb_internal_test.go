package store

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWithSearchPath(t *testing.T) {
	tests := []struct {
		name string
		url  string
		want string
	}{
		{
			name: "plain",
			url:  "postgres://u:p@h:5432/db",
			want: "postgres://u:p@h:5432/db?options=-c%20search_path%3Dmod_x",
		},
		{
			name: "keeps other parameters",
			url:  "postgresql://h/db?sslmode=disable&application_name=a+b",
			want: "postgresql://h/db?application_name=a%20b&options=-c%20search_path%3Dmod_x&sslmode=disable",
		},
		{
			name: "extends options",
			url:  "postgres://h/db?options=-c%20statement_timeout%3D5s",
			want: "postgres://h/db?options=-c%20statement_timeout%3D5s%20-c%20search_path%3Dmod_x",
		},
		{
			name: "replaces search_path",
			url:  "postgres://h/db?search_path=public",
			want: "postgres://h/db?options=-c%20search_path%3Dmod_x",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := withSearchPath(tc.url, "mod_x")
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
