package archive

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestConcurrentSHA256(t *testing.T) {
	data := make([]byte, 3<<20+17)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	want := sha256.Sum256(data)
	// Pieces smaller and larger than a buffer, and empty ones.
	for _, sizes := range [][]int{{1000}, {4096}, {300 << 10}, {0, 7, 1 << 20, 0, 65536}} {
		c := NewConcurrentSHA256()
		for off, i := 0, 0; off < len(data); i++ {
			k := min(sizes[i%len(sizes)], len(data)-off)
			n, err := c.Write(data[off : off+k])
			assert.NoError(t, err)
			assert.Equal(t, k, n)
			off += k
		}
		assert.Equal(t, hex.EncodeToString(want[:]), c.Sum(), "pieces of %v", sizes)
		c.Close() // after Sum: nothing happens
	}

	empty := sha256.Sum256(nil)
	assert.Equal(t, hex.EncodeToString(empty[:]), NewConcurrentSHA256().Sum())

	// Given up half way: Close returns (the goroutine ends).
	c := NewConcurrentSHA256()
	_, _ = c.Write(data)
	c.Close()
	c.Close()
}
